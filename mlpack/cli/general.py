"""``mlpack version`` and ``mlpack info``."""

from __future__ import annotations

import argparse
import json
import platform
import sys

from mlpack.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="show mlpack's version")
    p.set_defaults(handler=_version)
    p = sub.add_parser("info", help="show the store, the OCI runtime and the cgroup mode")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=_info)


def _version(args: argparse.Namespace, settings: Settings) -> int:
    import mlpack

    print(f"mlpack {mlpack.__version__} (python {platform.python_version()}, {sys.platform})")
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    import mlpack

    info: dict[str, object] = {
        "version": mlpack.__version__,
        "python": platform.python_version(),
        "home": str(settings.home),
        "store": str(settings.store_dir),
    }
    try:
        from mlpack.runtime import host_info

        info.update(host_info(settings))
        from mlpack.cli.system import rootless_info

        info.update(rootless_info())
        from mlpack.builder.depsmode import sandbox_problem

        # what `mlpack build BUNDLE` (deps=auto) does here, and why
        problem = sandbox_problem(settings)
        info["run_steps"] = "ok" if problem is None else f"refused: {problem}"
        info["bundle_deps"] = "run (a RUN step installs the lock)" if problem is None else \
            "context (mlpack installs the wheels; the Dockerfile has no RUN)"
    except ImportError:  # runtime stage not installed in this environment
        pass
    if args.format == "json":
        print(json.dumps(info, indent=2, default=str))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0
