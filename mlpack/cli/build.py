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
    p.add_argument("--check", action="store_true",
                   help="only validate the Dockerfile (stages, flags, references, ARG use); build nothing. "
                        "Exit status 1 and every problem with its line when there are any")
    p.add_argument("--compression", choices=("gzip", "zstd"), default="gzip",
                   help="layer compression: gzip (default, read by every tool) or zstd (OCI tar+zstd)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image digest")
    p.add_argument("--progress", choices=("auto", "plain", "quiet"), default="auto",
                   help="plain also prints each RUN step's output")
    p.add_argument("--network", choices=("default", "none", "host"), default="default",
                   help="RUN steps' network: default (own namespace, internet through slirp4netns, never the "
                        "host's loopback), none, or host (the host's namespace: trusted Dockerfiles only)")
    p.add_argument("-m", "--memory", help="memory limit of each RUN step (default 8g, or half the host's)")
    p.add_argument("--pids-limit", type=int, help="process limit of each RUN step (default 4096)")
    p.add_argument("--cpus", type=float, help="CPU limit of each RUN step (default: no limit)")
    p.add_argument("--build-context", action="append", default=[], metavar="NAME=DIR",
                   help="a named context COPY --from=NAME reads (a local directory; repeatable), "
                        "as docker buildx and buildah take it")
    p.add_argument("--deps", choices=("auto", "run", "context"), default="auto",
                   help="for a bundle: install its lock in a RUN step (run), or install the wheels here and copy "
                        "them in with no RUN at all (context); auto: context only where RUN cannot run")
    p.set_defaults(handler=_run)


def _check(args: argparse.Namespace) -> int:
    from mlpack.builder import check_dockerfile

    name, findings = check_dockerfile(args.context, dockerfile=args.dockerfile, build_args=dict(args.build_arg),
                                      target=args.target)
    for finding in findings:
        print(finding.render(name), file=sys.stderr)
    if findings:
        print(f"{name}: {len(findings)} problem(s)", file=sys.stderr)
        return 1
    print(f"{name}: no problems found", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from mlpack.builder import BuildOptions, TextProgress, build
    from mlpack.builder.options import default_run_limits
    from mlpack.errors import BuildError
    from mlpack.types import Limits

    if args.check:
        return _check(args)
    from mlpack.runtime.rootless import cgroup_parent

    cgroup_parent(Limits(memory=args.memory, pids=args.pids_limit, cpus=args.cpus))  # asked, so enforceable
    base = default_run_limits()
    limits = Limits(memory=args.memory if args.memory is not None else base.memory,
                    pids=args.pids_limit if args.pids_limit is not None else base.pids, cpus=args.cpus)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds the build: the RUN step is killed and its sandbox removed

    signal.signal(signal.SIGTERM, _terminate)
    quiet = args.quiet or args.progress == "quiet"
    progress = None if quiet else TextProgress(stream=sys.stderr, verbose=args.progress == "plain")
    # a failing step raises BuildError with its output tail; mlpack.cli prints it with the hint
    try:
        options = BuildOptions(
            tag=args.tag, dockerfile=args.dockerfile, build_args=dict(args.build_arg), target=args.target,
            no_cache=args.no_cache, secrets=args.secret, network=args.network, limits=limits,
            build_contexts=args.build_context, deps=args.deps,
        )
        image = build(args.context, options, settings=settings, progress=progress)
    except BuildError as exc:
        code = getattr(exc, "exit_code", None)
        if not isinstance(code, int) or code <= 0 or getattr(args, "debug", False):
            raise
        # a failed RUN: its exit status becomes ours (as buildah does); 1..255
        print(f"mlpack build: error: {exc}", file=sys.stderr)
        return min(code, 255)
    except KeyboardInterrupt as exc:
        print(f"mlpack build: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    if args.compression != "gzip":
        from mlpack.oci.compression import recompress
        from mlpack.oci.layout import Store

        image = recompress(Store(settings.store_dir), image, args.compression, ref=args.tag)
    print(image.digest)
    return 0
