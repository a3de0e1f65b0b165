"""The human-readable summary of a bundle (``mlpack inspect BUNDLE``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mlpack.bundle.bundle import Bundle

__all__ = ["summarize", "summary_dict", "shape_text"]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def summary_dict(bundle: "Bundle") -> dict[str, Any]:
    """The summary as plain data (``mlpack inspect --format json``)."""
    files = bundle.manifest["files"]
    size = sum((bundle.path / f).stat().st_size for f in files) + (bundle.path / "mlpack.yaml").stat().st_size
    return {
        "name": bundle.name,
        "path": str(bundle.path),
        "flavor": bundle.flavor,
        "framework": bundle.framework,
        "model_class": bundle.manifest["model"].get("class"),
        "model_file": bundle.model_path.name,
        "model_sha256": bundle.model_sha256,
        "size_bytes": size,
        "table": bundle.manifest.get("table"),
        "conversion": _conversion(bundle),
        "classes": bundle.manifest["model"].get("classes"),
        "inputs": [s.to_dict() for s in bundle.inputs],
        "outputs": [s.to_dict() for s in bundle.outputs],
        "parity": bundle.parity,
        "environment": bundle.manifest.get("environment", {}),
        "requirements": bundle.requirements,
        "hooks": bundle.manifest.get("hooks"),
        "created": bundle.manifest.get("created"),
    }


def _conversion(bundle: "Bundle") -> str:
    """Why the model is served as it is: converted to ONNX, or the reason it fell back."""
    model = bundle.manifest["model"]
    if bundle.flavor == "onnx":
        return "converted to ONNX"
    error = model.get("conversion_error")
    return f"python flavour (ONNX conversion failed: {error})" if error else "python flavour (asked for)"


def shape_text(shape: Any) -> str:
    """``[batch, *, 3]``: axis 0 is the batch; a later free axis (``dynamic_axes``) takes any length."""
    return "[" + ", ".join(("batch" if i == 0 else "*") if x is None else str(x) for i, x in enumerate(shape)) + "]"


def _column_line(c: dict[str, Any]) -> str:
    text = c["dtype"]
    if c["dtype"] == "category":
        text += f" {c.get('categories')}" + (" ordered" if c.get("ordered") else "")
    elif c.get("pandas_dtype") and c["pandas_dtype"] != c["dtype"]:
        text += f" (pandas {c['pandas_dtype']})"
    return f"{c['name']}: {text}" + (", nullable" if c.get("nullable") else "")


def summarize(bundle: "Bundle") -> str:
    d = summary_dict(bundle)
    env = d["environment"]
    lines = [
        f"bundle     {d['name']}  ({d['path']})",
        f"model      {d['model_class'] or '?'} [{d['framework']}] -> {d['flavor']} "
        f"{d['model_file']}  sha256:{d['model_sha256'][:12]}",
        f"size       {_size(d['size_bytes'])}",
        f"python     {env.get('python', '?')} on {env.get('platform', '?')}",
    ]
    lines.append(f"conversion {d['conversion']}")
    table = d["table"]
    if table:
        for i, c in enumerate(table["columns"]):
            lines.append(f"{(table['kind'] if i == 0 else ''):<10} {_column_line(c)}")
    if d["classes"] is not None:
        lines.append(f"classes    {d['classes']}")
    for label, specs in (("inputs", d["inputs"]), ("outputs", d["outputs"])):
        for i, s in enumerate(specs):
            lines.append(f"{label if i == 0 else '':<10} {s['name']}: {s['dtype']} {shape_text(s['shape'])}")
    parity = d["parity"]
    if parity.get("checked"):
        state = "passed" if parity.get("passed") else "FAILED (allowed by override)" if parity.get("override") else "FAILED"
        worst = ", ".join(
            f"{name} max_abs={o.get('max_abs_error', 0):.3g}" + ("" if o.get("passed", True) else " !")
            for name, o in parity.get("outputs", {}).items()
        )
        lines.append(f"parity     {state} on {parity.get('rows')} rows ({worst})")
    else:
        lines.append("parity     not checked")
    lines.append(f"lock       {len(d['requirements'])} pinned: " + ", ".join(d["requirements"][:8]) + (" …" if len(d["requirements"]) > 8 else ""))
    if d["hooks"]:
        lines.append(f"hooks      {d['hooks']}")
    return "\n".join(lines)
