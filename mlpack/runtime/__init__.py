"""run: images as containers through a real OCI runtime (crun or runc), with enforced limits.

Public surface: :func:`run` and :class:`Container` (the docker-like
lifecycle: status, health, logs, stats, wait, stop, kill, remove, exec),
:func:`list_containers` / :func:`get_container` (what `ps` sees from any
process), :func:`host_info` (what `mlpack info` shows), and the builder's
sandbox :func:`run_sandbox` (:mod:`mlpack.runtime.sandbox`).
"""

from __future__ import annotations

from collections.abc import Sequence

from mlpack.runtime.rootless import delegated
from mlpack.settings import Settings
from mlpack.types import Limits

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from mlpack.runtime.container import Container
    from mlpack.runtime.options import RunOptions

# Public names -> defining module. Imported on first use, so the monitor
# process (python -m mlpack.runtime.monitor) starts without the rest.
_LAZY = {
    "Container": "container", "get_container": "container", "list_containers": "container",
    "ImageSource": "create", "create_container": "create", "image_source": "create",
    "host_info": "host", "cgroup_mode": "host", "select_runtime": "host",
    "Healthcheck": "options", "PortMapping": "options", "RestartPolicy": "options", "RunOptions": "options",
    "parse_ports": "options", "parse_restart": "options", "parse_volume": "options",
    "Mount": "sandbox", "SandboxResult": "sandbox", "SandboxSpec": "sandbox", "run_sandbox": "sandbox",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlpack.runtime' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"mlpack.runtime.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "run", "Container", "get_container", "list_containers", "ImageSource", "RunOptions", "PortMapping",
    "RestartPolicy", "Healthcheck", "host_info", "cgroup_mode", "select_runtime",
    "run_sandbox", "SandboxSpec", "SandboxResult", "Mount",
    "parse_ports", "parse_restart", "parse_volume", "image_source", "create_container",
]


@delegated  # an ordinary user's container is made in its user namespace
def run(
    image: Any,
    options: "RunOptions | None" = None,
    *,
    settings: Settings,
    limits: Limits | None = None,
    ports: Any = None,
    name: str | None = None,
    command: Sequence[str] | None = None,
    detach: bool = True,
    **fields: Any,
) -> "Container":
    """Run ``image`` (a store reference, an mlpack.oci Image or an ImageSource) as a container.

    ``options`` (a :class:`RunOptions`), or its fields by keyword, which override those of ``options``.

    ``ports``: ``["8080:8080"]``, ``{8080: 18080}`` or PortMapping values;
    None publishes every port the image EXPOSEs on a free 127.0.0.1 port
    (``Container.url`` says where); ``()`` publishes none. Any other
    RunOptions field (env, user, workdir, network, read_write, cap_add,
    volumes, devices, restart, auto_remove, hostname, healthcheck, ...) may be
    given by keyword. ``detach=False`` waits for the container to exit.
    """
    from mlpack.runtime.create import create_container, image_source
    from mlpack.runtime.options import RunOptions, parse_ports, parse_restart, parse_volume

    if "rm" in fields:
        fields["auto_remove"] = fields.pop("rm")
    if "restart" in fields:
        fields["restart"] = parse_restart(fields["restart"])
    if "volumes" in fields:
        fields["volumes"] = tuple(parse_volume(v) for v in fields["volumes"])
    for key in ("cap_add", "devices", "entrypoint"):
        if key in fields and fields[key] is not None:
            fields[key] = tuple(fields[key])
    base = options or RunOptions()
    opts = RunOptions(**{**base.__dict__, **fields,
                         "command": tuple(command) if command else base.command,
                         "name": name or base.name,
                         "ports": parse_ports(ports) if ports is not None else base.ports})
    remove_after = not detach and opts.auto_remove
    if remove_after:  # removed here once the exit code is read, never before
        opts = RunOptions(**{**opts.__dict__, "auto_remove": False})
    src = image_source(image, settings)
    cdir = create_container(src, limits or Limits(), opts, settings, publish_exposed=ports is None)
    from mlpack.runtime.container import Container  # once the runtime runs: nothing of it is needed before

    container = Container(cdir, settings)
    if not detach:
        container.wait()
        if remove_after:
            container.remove(force=True)
    return container
