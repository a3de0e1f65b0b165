"""``mlpack render BUNDLE -o DIR``: a bundle becomes a build context (Dockerfile + files).

Each flag maps onto one :class:`mlpack.dockerfile.RenderOptions` field.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mlpack.errors import RenderError
from mlpack.types import DEFAULT_GRPC_PORT, DEFAULT_PORT


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``render``."""
    p = sub.add_parser(
        "render",
        help="write a Dockerfile and a self-contained build context for a bundle",
        description="Render a bundle into a build context that mlpack build, docker build "
                    "or buildah bud can build as is.",
    )
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory (from mlpack capture)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="new or empty directory for the context")
    p.add_argument("--base", metavar="IMAGE",
                   help="base image for both stages (default python:<python>-slim; "
                        "'local' = the offline localhost/mlpack/python:<python>)")
    p.add_argument("--python", metavar="X.Y", help="Python version for the default base names")
    p.add_argument("--gpu", action="store_true", help="render the GPU variant (onnxruntime-gpu + CUDA wheels)")
    p.add_argument("--pip", action="append", default=[], metavar="REQ", help="extra pip requirement (repeatable)")
    p.add_argument("--apt", action="append", default=[], metavar="PKG", help="extra Debian package (repeatable)")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="extra ENV in the image (repeatable)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="extra LABEL (repeatable)")
    p.add_argument("--port", type=int, metavar="N", help=f"port the server listens on (default {DEFAULT_PORT})")
    p.add_argument("--grpc-port", type=int, metavar="N", help=f"port of the gRPC inference service (default {DEFAULT_GRPC_PORT}; 0: none)")
    p.add_argument("--uid", type=int, metavar="N", help="uid/gid of the non-root user (default 10001)")
    p.add_argument("--template-dir", type=Path, metavar="DIR",
                   help="directory searched before the built-in templates")
    p.add_argument("--template", metavar="NAME", help="template to render (default cpu.Dockerfile.j2 / gpu.Dockerfile.j2)")
    p.add_argument("--image-version", metavar="V", help="org.opencontainers.image.version label")
    p.add_argument("--source", metavar="URL", help="org.opencontainers.image.source label")
    p.add_argument("--revision", metavar="REV", help="org.opencontainers.image.revision label")
    p.add_argument("--deps", choices=("run", "context"), default="run",
                   help="run: a RUN step installs the lock; context: mlpack installs the wheels into DIR/deps "
                        "for the image's platform (base image read from the store) and the Dockerfile has no RUN")
    p.add_argument("--print", dest="print_dockerfile", action="store_true", help="also print the Dockerfile")
    p.set_defaults(handler=_render)


def options_from_args(args: argparse.Namespace) -> Any:
    """The RenderOptions the flags ask for."""
    from mlpack.dockerfile import RenderOptions

    values: dict[str, Any] = {
        "base": args.base,
        "python": args.python,
        "gpu": args.gpu,
        "pip": tuple(args.pip),
        "apt": tuple(args.apt),
        "env": _pairs(args.env, "--env"),
        "labels": _pairs(args.label, "--label"),
        "template_dir": args.template_dir,
        "template": args.template,
        "version": args.image_version,
        "source": args.source,
        "revision": args.revision,
    }
    if args.port is not None:
        values["port"] = args.port
    if args.grpc_port is not None:
        values["grpc_port"] = args.grpc_port
    if args.uid is not None:
        values["uid"] = args.uid
    return RenderOptions(**values)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RenderError(f"{flag} {item!r} is not KEY=VALUE", hint=f"write {flag} NAME=value")
        out[key] = value
    return out


def _render(args: argparse.Namespace, settings: Any) -> int:
    from mlpack.dockerfile import render

    options = options_from_args(args)
    if args.deps == "context":
        from mlpack.builder.depsmode import render_for_build
        from mlpack.oci.layout import Store

        context = render_for_build(args.bundle, options, settings, Store(settings.store_dir), deps="context",
                                   out_dir=args.output)
    else:
        context = render(args.bundle, options, out_dir=args.output)
    if args.print_dockerfile:
        print(context.dockerfile.read_text(), end="")
    print(f"rendered {context.path} (base {context.base_image})")
    return 0
