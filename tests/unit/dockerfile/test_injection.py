"""Hostile values from users and bundles cannot add instructions or run commands.

Each test renders once with benign values and once with hostile ones: the
instruction list must be the same, every hostile value must read back
verbatim from where it landed, and the quoted shell words, run by the real
/bin/sh, must not create the marker file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlpack.dockerfile import RenderOptions, render, shell_quote
from mlpack.errors import RenderError
from tests.unit.dockerfile.dfparse import instructions, key_values, stages


def _hostile(marker: Path) -> list[str]:
    return [
        f"foo$(touch {marker})",
        f"foo`touch {marker}`",
        f"foo;touch {marker}",
        f"foo' && touch {marker} && echo '",
        f'foo" && touch {marker} && echo "',
        f"foo\\\" && touch {marker} #",
        f"x\\$(touch {marker})",
        "trailing backslash\\",
        "${HOME}$PATH",
    ]


def _shape(text: str) -> list[tuple[str, list[str]]]:
    """Instruction names with their flags: what a hostile value must not change."""
    return [(i.cmd, i.flags) for i in instructions(text)]


def _pip_words(text: str) -> list[str]:
    """The argument words after the lock in the pip install line, as sh splits them."""
    install = next(i for i in instructions(text) if i.cmd == "RUN" and "pip install" in i.args)
    tail = install.args.split("pip install --no-compile -r /tmp/mlpack/requirements.lock", 1)[1]
    tail = tail.rsplit(";", 1)[0]  # '; fi' ends the branch
    return tail


def test_hostile_values_change_nothing(stub_bundle, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    values = _hostile(marker)
    benign = RenderOptions(pip=tuple(f"pkg{n}" for n in range(len(values))),
                           env={f"E{n}": "v" for n in range(len(values))},
                           labels={f"l{n}": "v" for n in range(len(values))}, source_date_epoch=0)
    hostile = RenderOptions(pip=tuple(f"p{v}" for v in values),
                            env={f"E{n}": v for n, v in enumerate(values)},
                            labels={f"l{n}": v for n, v in enumerate(values)}, source_date_epoch=0)
    good = render(stub_bundle, benign, out_dir=tmp_path / "good").dockerfile.read_text()
    bad = render(stub_bundle, hostile, out_dir=tmp_path / "bad").dockerfile.read_text()
    assert _shape(bad) == _shape(good)

    runtime = stages(instructions(bad))["runtime"]
    env = {k: v for i in runtime if i.cmd == "ENV" for k, v in key_values(i.args).items()}
    labels = {k: v for i in runtime if i.cmd == "LABEL" for k, v in key_values(i.args).items()}
    for n, value in enumerate(values):
        assert env[f"E{n}"] == value
        assert labels[f"l{n}"] == value

    # The pip words, run by sh exactly as written in the Dockerfile, come back
    # as the original values and execute nothing.
    words = _pip_words(bad)
    result = subprocess.run(["sh", "-c", f"printf '%s\\n' {words}"], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [f"p{v}" for v in values]
    assert not marker.exists()
    for value in values:
        assert shell_quote(f"p{value}") in bad


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_the_whole_install_step_runs_nothing_but_the_installer(stub_bundle, tmp_path: Path,
                                                                installer: str) -> None:
    """Run the rendered install RUN itself with sh, with python3 (and uv)
    replaced by recorders: the installer gets the hostile values verbatim as
    arguments, and the marker file is never created."""
    marker = tmp_path / "pwned"
    values = _hostile(marker)
    ctx = render(stub_bundle, RenderOptions(pip=tuple(f"p{v}" for v in values)), out_dir=tmp_path / "ctx")
    install = next(i for i in instructions(ctx.dockerfile.read_text()) if i.cmd == "RUN" and "pip install" in i.args)
    script = re.sub(r"^(--mount=\S+\s+)+", "", install.args).replace("/opt/venv", str(tmp_path / "venv"))
    # PATH holds only the recorders and the two tools they use, so the branch
    # taken does not depend on what this host has installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mkdir", "cp"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    log = tmp_path / "argv"
    recorder = (
        "#!/bin/sh\n"
        'if [ "$1 $2" = "-m venv" ]; then eval "dir=\\${$#}"; mkdir -p "$dir/bin"; cp "$0" "$dir/bin/python"; exit 0; fi\n'
        f'for a in "$@"; do printf "%s\\n" "$a" >> {shell_quote(str(log))}; done\n'
    )
    names = ["python3", "uv"] if installer == "uv" else ["python3"]
    for name in names:
        (bin_dir / name).write_text(recorder)
        (bin_dir / name).chmod(0o755)
    subprocess.run(["/bin/sh", "-c", script], env={"PATH": str(bin_dir)}, check=True,
                   capture_output=True, timeout=30)
    argv = log.read_text().splitlines()
    if installer == "uv":
        assert argv[:5] == ["pip", "install", "--python", str(tmp_path / "venv/bin/python"), "-r"]
    else:
        assert argv[:5] == ["-m", "pip", "install", "--no-compile", "-r"]
    assert argv[5] == "/tmp/mlpack/requirements.lock"
    assert argv[6:] == [f"p{v}" for v in values]
    assert not marker.exists()


@pytest.mark.parametrize("field", ["pip", "env", "labels", "version", "source", "revision"])
def test_a_newline_never_reaches_the_dockerfile(stub_bundle, tmp_path: Path, field: str) -> None:
    value = "ok\nRUN touch /tmp/pwned"
    options = {
        "pip": {"pip": (value,)},
        "env": {"env": {"A": value}},
        "labels": {"labels": {"a": value}},
        "version": {"version": value},
        "source": {"source": value},
        "revision": {"revision": value},
    }[field]
    with pytest.raises(RenderError, match="control character"):
        render(stub_bundle, RenderOptions(**options), out_dir=tmp_path / "ctx")
    assert not (tmp_path / "ctx" / "Dockerfile").exists()


def test_hostile_bundle_fields_are_refused_or_quoted(stub_bundle, tmp_path: Path) -> None:
    stub_bundle.framework = "sklearn\nRUN touch /tmp/pwned"
    with pytest.raises(RenderError, match="control character"):
        render(stub_bundle, out_dir=tmp_path / "a")
    stub_bundle.framework = 'sk"learn $(touch /tmp/pwned)'
    text = render(stub_bundle, out_dir=tmp_path / "b").dockerfile.read_text()
    labels = {k: v for i in instructions(text) if i.cmd == "LABEL" for k, v in key_values(i.args).items()}
    assert labels["io.mlpack.model.framework"] == 'sk"learn $(touch /tmp/pwned)'


@pytest.mark.parametrize("line", ["--extra-index-url https://evil.example/simple", "-e git+https://evil/x",
                                  "-r /etc/passwd"])
def test_a_lock_with_pip_options_is_refused(stub_bundle, tmp_path: Path, line: str) -> None:
    stub_bundle.requirements = [*stub_bundle.requirements, line]
    with pytest.raises(RenderError, match="pip option"):
        render(stub_bundle, out_dir=tmp_path / "ctx")
