"""``mlpack images|pull|push|tag|rmi|save|load``, ``base bootstrap``, ``system verify|prune``.

Also ``inspect_target(args, settings)`` for the generic ``mlpack inspect``:
it prints an image from the store or raises ImageNotFound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from mlpack.errors import MlpackError, StoreError
from mlpack.settings import Settings

__all__ = ["register", "inspect_target", "ProgressPrinter"]


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the image and store sub-commands."""
    p = sub.add_parser("images", help="list images in the local store")
    p.add_argument("-q", "--quiet", action="store_true", help="only digests")
    p.add_argument("--digests", action="store_true", help="show manifest digests")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=_images)

    p = sub.add_parser("pull", help="pull an image from a registry into the store")
    p.add_argument("ref")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(handler=_pull)

    p = sub.add_parser("push", help="push an image from the store to a registry")
    p.add_argument("image", help="image in the store")
    p.add_argument("ref", nargs="?", help="destination reference (default: the image's own name)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--chunk-size", type=int, default=32 << 20, help="upload blobs bigger than this in chunks (bytes)")
    _compression_flag(p)
    p.set_defaults(handler=_push)

    p = sub.add_parser("tag", help="give an image another name")
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(handler=_tag)

    p = sub.add_parser("rmi", help="remove images (names or digests) from the store")
    p.add_argument("images", nargs="+")
    p.add_argument("--no-prune", action="store_true", help="keep the now unreferenced blobs")
    p.set_defaults(handler=_rmi)

    p = sub.add_parser("save", help="write images to a tar (docker-archive by default) or an OCI layout")
    p.add_argument("images", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--format", choices=("docker-archive", "oci-archive", "oci-dir"), default="docker-archive")
    _compression_flag(p)
    p.set_defaults(handler=_save)

    p = sub.add_parser("load", help="load images from a docker-archive or OCI archive tar or OCI layout dir")
    p.add_argument("-i", "--input", required=True)
    p.add_argument("-t", "--tag", help="name the loaded image (single-image archives)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(handler=_load)

    base = sub.add_parser("base", help="base images").add_subparsers(dest="base_command", metavar="COMMAND")
    p = base.add_parser("bootstrap", help="build localhost/mlpack/python:3.11 from Debian packages (mmdebstrap)")
    p.add_argument("--suite", default="bookworm")
    p.add_argument("--mirror", action="append", default=[], help="Debian mirror (default: the host's apt sources)")
    p.add_argument("-t", "--tag", default=None, help="store it under this name")
    p.add_argument("--force", action="store_true", help="bootstrap again even if the image exists")
    p.add_argument("--platform", default=None, metavar="OS/ARCH",
                   help="linux/amd64 or linux/arm64 (default: this machine's); another architecture than the "
                        "host's is extracted without emulation and joins the tag's other platforms in one index")
    p.set_defaults(handler=_bootstrap)

    system = sub.add_parser("system", help="store maintenance").add_subparsers(dest="system_command", metavar="COMMAND")
    p = system.add_parser("verify", help="re-hash every blob and check every reference")
    p.set_defaults(handler=_verify)
    p = system.add_parser("prune", help="delete unreferenced blobs and unused unpacked layers")
    p.add_argument("--grace", type=float, default=0.0, help="spare blobs younger than this many seconds")
    p.add_argument("--build-cache", action="store_true",
                   help="also drop the build cache and RUN cache mounts (the next build is cold)")
    p.set_defaults(handler=_prune)
    from mlpack.cli.system import register_system

    register_system(system)


def _compression_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compression", choices=("gzip", "zstd"), default=None,
                   help="re-encode the layers first: gzip or zstd (OCI tar+zstd; not for Docker formats); "
                        "default: as stored")


def _store(settings: Settings) -> Any:
    from mlpack.oci.layout import Store

    return Store(settings.store_dir)


class ProgressPrinter:
    """Prints transfer progress to stderr: one updating line per blob on a terminal, a line per blob otherwise."""

    def __init__(self, verb: str, quiet: bool = False) -> None:
        self.verb, self.quiet = verb, quiet
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self.bytes = 0

    def __call__(self, event: str, digest: str, done: int, total: int) -> None:
        if self.quiet:
            return
        short = digest.split(":", 1)[-1][:12]
        if event == "transfer":
            now = time.monotonic()
            if self.tty and (now - self._last > 0.1 or done == total):
                self._last = now
                print(f"\r{short}: {self.verb} {done / 1e6:7.1f}/{total / 1e6:.1f} MB", end="", file=sys.stderr)
            return
        if event == "done":
            self.bytes += total
        label = {"skip": "already there", "mount": "mounted", "done": f"{self.verb} {total / 1e6:.1f} MB",
                 "compress": f"compressed to {total / 1e6:.1f} MB"}[event]
        print(f"\r{short}: {label}" + " " * 20, file=sys.stderr)


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return str(n)


def _images(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.reference import parse

    rows = _store(settings).list()
    if args.format == "json":
        print(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    if args.quiet:
        for r in rows:
            print(r.id.split(":", 1)[1][:12])
        return 0
    print(f"{'REPOSITORY':<40} {'TAG':<16} {'IMAGE ID':<12}  {'SIZE':>9}" + ("  DIGEST" if args.digests else ""))
    for r in rows:
        repo, tag = "<none>", "<none>"
        if r.ref:
            try:
                ref = parse(r.ref)
                repo = ref.familiar_name
                tag = ref.tag or "<none>"
            except MlpackError:
                repo = r.ref
        line = f"{repo:<40} {tag:<16} {r.id.split(':', 1)[1][:12]:<12}  {_human(r.size):>9}"
        print(line + (f"  {r.digest}" if args.digests else ""))
    return 0


def _pull(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.oci.registry import pull

    started = time.monotonic()
    printer = ProgressPrinter("pulled", args.quiet)
    image = pull(args.ref, settings=settings, progress=printer)
    secs = time.monotonic() - started
    if not args.quiet:
        print(f"pulled {printer.bytes / 1e6:.1f} MB in {secs:.1f}s", file=sys.stderr)
    print(f"{image.ref or args.ref}@{image.digest}" if image.ref and "@" not in image.ref else image.digest)
    return 0


def _push(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.oci.registry import PushOptions, push

    store = _store(settings)
    image = store.resolve(args.image)
    if args.compression:
        from mlpack.oci.compression import recompress

        image = recompress(store, image, args.compression)
    ref = args.ref or image.ref
    if not ref:
        raise StoreError(f"{args.image} has no name to push to", hint="give a destination: mlpack push IMAGE REGISTRY/NAME:TAG")
    started = time.monotonic()
    printer = ProgressPrinter("pushed", args.quiet)
    digest = push(image, ref, settings=settings, progress=printer, options=PushOptions(chunk_size=args.chunk_size))
    if not args.quiet:
        print(f"pushed {printer.bytes / 1e6:.1f} MB in {time.monotonic() - started:.1f}s", file=sys.stderr)
    print(f"{ref}@{digest}")
    return 0


def _tag(args: argparse.Namespace, settings: Settings) -> int:
    _store(settings).tag(args.source, args.target)
    return 0


def _rmi(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    for name in args.images:
        for removed in store.delete(name):
            print(f"Untagged: {removed}")
    if not args.no_prune:
        count, freed = store.gc(grace_s=0)
        if count:
            print(f"Deleted {count} blobs ({_human(freed)})")
    return 0


def _save(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.oci.archive import save

    images = save(_store(settings), args.images, args.output, format=args.format, compression=args.compression)
    print(f"saved {len(images)} image(s) to {args.output} ({args.format})", file=sys.stderr)
    return 0


def _load(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.oci.archive import load

    quiet = args.quiet
    images = load(_store(settings), args.input, ref=args.tag,
                  progress=None if quiet else (lambda line: print(line, file=sys.stderr)),
                  layers_dir=settings.layers_dir)
    for image in images:
        print(f"Loaded image: {image.ref or image.digest}")
    return 0


def _bootstrap(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.errors import ImageNotFound
    from mlpack.oci.base import BASE_REF, BaseOptions, bootstrap, runtime_image, runtime_ref
    from mlpack.oci.platforms import host_platform, parse_platform, platform_text

    ref = args.tag or BASE_REF
    platform = parse_platform(args.platform) if args.platform else host_platform()
    if not args.force:
        try:
            store = _store(settings)
            image = store.resolve(ref, platform=platform)
            if image.config.architecture == platform[1]:
                runtime_image(store, runtime_ref(ref), platform)  # made from it if missing
                print(f"{ref} ({platform_text(platform)}) is already in the store ({image.digest}); "
                      "use --force to rebuild it")
                return 0
        except ImageNotFound:
            pass
    image = bootstrap(settings, BaseOptions(ref=ref, suite=args.suite, mirrors=tuple(args.mirror), arch=platform[1]),
                      log=lambda line: print(line, file=sys.stderr))
    print(f"{ref}@{image.digest}")
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.oci.validate import verify
    from mlpack.runtime.sandboxreap import leftovers

    report = verify(_store(settings))
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    stale = leftovers(settings.home)
    for line in stale:  # RUN steps of a killed build; `mlpack system prune` or the next build reaps them
        print(f"PROBLEM: leftover RUN sandbox {line}; `mlpack system prune` removes it")
    modified = _verify_unpacked_layers(settings)
    if stale or modified:
        print(f"checked {report.checked} blobs: {len(report.problems) + len(stale) + modified} problem(s)")
        return 1
    if report.garbage:
        print(f"{len(report.garbage)} leftover or unreferenced file(s); `mlpack system prune` removes them")
    print(f"checked {report.checked} blobs: {'ok' if report.ok else f'{len(report.problems)} problem(s)'}")
    return 0 if report.ok else 1


def _verify_unpacked_layers(settings: Settings) -> int:
    """Check unpacked layers against their recorded tree digests; a modified one is removed (the next
    use unpacks it again from its verified blob) unless a container uses it. Returns how many were modified."""
    from mlpack.oci.layertree import check_layers, remove_layer

    checks = check_layers(settings.layers_dir)
    bad = [c for c in checks if c.status == "modified"]
    in_use = _layers_in_use(settings) if bad else set()
    for c in bad:
        if c.diff_id in in_use:
            print(f"PROBLEM: unpacked layer {c.diff_id} was modified on disk ({c.path}); a container uses it: "
                  "remove that container and run `mlpack system verify` again to repair it")
        else:
            remove_layer(settings.layers_dir, c.diff_id)
            print(f"PROBLEM: unpacked layer {c.diff_id} was modified on disk; removed it "
                  "(it is unpacked again from its blob when next used)")
    unrecorded = sum(c.status == "unrecorded" for c in checks)
    if unrecorded:
        print(f"{unrecorded} unpacked layer(s) without a recorded tree digest (unpacked by an older mlpack) "
              "were not checked")
    print(f"checked {len(checks) - unrecorded} unpacked layer(s): {len(bad)} modified")
    return len(bad)


def _prune(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.oci.layercache import prune
    from mlpack.runtime.sandboxreap import reap_stale

    reaped = reap_stale(settings.home)  # before layers: a killed build's RUN step still uses its lowers
    if reaped:
        print(f"removed {len(reaped)} leftover RUN sandbox(es) of killed builds")
    store = _store(settings)
    count, freed = store.gc(grace_s=args.grace)
    keep: set[str] = set()
    for summary in store.list():
        keep.update(store.resolve(summary.digest).diff_ids)
    keep.update(_layers_in_use(settings))
    layers = prune(settings.layers_dir, keep, grace_s=args.grace)
    print(f"deleted {count} blobs ({_human(freed)}) and {layers} unpacked layer(s)")
    if args.build_cache:
        from mlpack.builder.prune import prune_cache

        print(f"deleted the build cache ({_human(prune_cache(settings))})")
    return 0


def _layers_in_use(settings: Settings) -> set[str]:
    """diff_ids of the unpacked layers under any container, even one whose image was removed:
    pruning them would pull the floor from under a running container."""
    from pathlib import Path

    from mlpack.runtime import list_containers

    base = settings.layers_dir / "sha256"
    used = set()
    for container in list_containers(settings, all=True):
        for lower in container.record.get("lowerdirs") or []:
            try:
                used.add("sha256:" + Path(lower).relative_to(base).parts[0])
            except (ValueError, IndexError):
                continue
    return used


def inspect_target(args: argparse.Namespace, settings: Settings) -> int:
    """Print the image ``args.target`` from the store; raises ImageNotFound if there is none."""
    image = _store(settings).resolve(args.target)
    doc = {"Ref": image.ref, "Digest": image.digest, "Id": image.id, "MediaType": image.media_type,
           "Size": image.size, "Manifest": image.manifest, "Config": image.config.blob}
    if getattr(args, "format", "json") == "text":
        cfg = image.config
        print(f"ref:          {image.ref}\ndigest:       {image.digest}\nid:           {image.id}")
        print(f"size:         {_human(image.size)} in {len(image.layers)} layer(s)")
        print(f"platform:     {cfg.os}/{cfg.architecture}")
        for key, value in (("Entrypoint", cfg.entrypoint), ("Cmd", cfg.cmd), ("User", cfg.user),
                           ("WorkingDir", cfg.working_dir), ("Env", cfg.env), ("ExposedPorts", {port: {} for port in cfg.exposed_ports})):
            if value:
                print(f"{key + ':':<14}{list(value) if isinstance(value, tuple) else value}")
    else:
        print(json.dumps(doc, indent=2))
    return 0
