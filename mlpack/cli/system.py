"""``mlpack system delegate USER [--undo]``: hand an ordinary user its cgroup subtree (run once, as root)."""

from __future__ import annotations

import argparse
import os
import functools
from collections.abc import Callable

from mlpack.settings import Settings


def register_system(system: argparse._SubParsersAction) -> None:
    """Add the rootless set-up commands to ``mlpack system``."""
    p = system.add_parser("delegate", help="let an ordinary user's containers be limited (run as root, once)")
    p.add_argument("user", help="user name or uid")
    p.add_argument("--undo", action="store_true", help="take the delegation back (refused while it is in use)")
    p.set_defaults(handler=_delegate)
    # Unpacked layers and RUN caches of an ordinary user hold files of its subordinate
    # ids, which only its user namespace may delete: prune runs there.
    prune = system.choices.get("prune")
    if prune is not None:
        prune.set_defaults(handler=functools.partial(_in_userns, prune.get_default("handler")))


def _in_userns(handler: Callable[[argparse.Namespace, Settings], int], args: argparse.Namespace,
               settings: Settings) -> int:
    from mlpack.runtime.rootless import delegated

    return int(delegated(handler)(args, settings) or 0)


def _delegate(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.runtime.delegation import delegate

    done = delegate(args.user, undo=args.undo)
    verb = ("removed" if args.undo else "delegated") if done.changed else \
        ("nothing to remove for" if args.undo else "already delegated to")
    print(f"{verb} {done.user} (uid {done.uid}): {len(done.dirs)} cgroup(s)")
    for d in done.dirs:
        print(f"  {d}")
    if not args.undo:
        print(f"{done.user} may now run containers with --cpus, --memory and --pids-limit")
        from mlpack.runtime.rootless import TUN, TUN_HINT

        if os.path.exists(TUN) and os.stat(TUN).st_mode & 0o006 != 0o006:
            print(f"note: {TUN_HINT}")
    return 0


def rootless_info() -> dict[str, object]:
    """What `mlpack info` adds: who runs, the id mapping, and which limit-enforcement case holds."""
    from mlpack.runtime.delegation import limits_case
    from mlpack.runtime.idmap import host_uid, user_mapping

    uid = host_uid()
    case = limits_case(uid)
    info: dict[str, object] = {"rootless": uid != 0, "limits": case.kind, "limits_detail": case.detail}
    if uid != 0:
        mapping = user_mapping(uid)
        info["id_mapping"] = mapping.describe()
        if case.kind == "none":
            info["limits_fix"] = f"as root, once: mlpack system delegate {mapping.user}"
        info["devices"] = ("rootless: only the requested device nodes are bound in; the device cgroup "
                           "cannot be enforced without root (the host's file permissions still apply)")
    return info
