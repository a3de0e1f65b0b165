"""``mlpack build``: a Dockerfile and its context into an image in the local store."""

from __future__ import annotations

import argparse
import sys

from mlpack.settings import Settings


def _build_arg(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"--build-arg {text!r} needs KEY=VALUE")
    if not eq:  # docker: --build-arg KEY takes the value from the environment
        import os

        value = os.environ.get(key, "")
    return key, value


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``mlpack build``."""
    p = sub.add_parser(
        "build",
        help="build an image from a Dockerfile (no daemon needed)",
        description="Build CONTEXT (a directory with a Dockerfile, or a bundle directory, which is "
                    "rendered first) into an OCI image in the local store.",
    )
    p.add_argument("context", metavar="CONTEXT", help="build context directory (or a bundle directory)")
    p.add_argument("-f", "--file", dest="dockerfile", metavar="DOCKERFILE",
                   help="Dockerfile path (default CONTEXT/Dockerfile)")
    p.add_argument("-t", "--tag", metavar="TAG", help="name the image, e.g. localhost/app:1")
    p.add_argument("--build-arg", action="append", type=_build_arg, default=[], metavar="KEY=VALUE",
                   help="set a build-time ARG (repeatable)")
    p.add_argument("--target", metavar="STAGE", help="build this stage (and only what it needs)")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached steps")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE",
                   help="a file RUN --mount=type=secret can read; never stored in the image (repeatable)")
    p.add_argument("--compression", choices=("gzip", "zstd"), default="gzip",
                   help="layer compression: gzip (default, read by every tool) or zstd (OCI tar+zstd)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")
    p.add_argument("--progress", choices=("auto", "plain", "quiet"), default="auto",
                   help="plain also prints each RUN step's output")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.builder import TextProgress, build

    quiet = args.quiet or args.progress == "quiet"
    progress = None if quiet else TextProgress(stream=sys.stderr, verbose=args.progress == "plain")
    # a failing step raises BuildError with its output tail; mlpack.cli prints it with the hint
    image = build(
        args.context, tag=args.tag, settings=settings, dockerfile=args.dockerfile,
        build_args=dict(args.build_arg), target=args.target, no_cache=args.no_cache,
        secrets=args.secret, progress=progress,
    )
    if args.compression != "gzip":
        from mlpack.oci.compression import recompress
        from mlpack.oci.layout import Store

        image = recompress(Store(settings.store_dir), image, args.compression, ref=args.tag)
    print(image.digest)
    return 0
