"""mlpack as an ordinary user: the privileged steps run in a user namespace of the user's own.

Outside, the user has no right to mount an overlay, make a network
namespace, chown a file to another id or start crun. Inside a user + mount
namespace it creates itself (:mod:`mlpack.runtime.idmap` says with which
ids), it is root over what it owns, and the runtime code works unchanged:

- :func:`delegated` wraps a public entry point (``runtime.run``,
  ``builder.build``): called by an ordinary user, the call is carried out by
  ``python -m mlpack.runtime.delegate`` in a fresh namespace (pickled
  arguments in, the result or the error out; callables such as ``progress``
  are called back here). A container's monitor is forked from that process,
  so it and the container live on in that namespace.
- :func:`enter_argv` is how later commands (``stop``, ``kill``, ``exec``,
  ``rm``) reach a container: ``nsenter`` into its monitor's namespaces,
  which a user may join because it owns them.
- :func:`cgroup_parent` says where a container's cgroup goes
  (:mod:`mlpack.runtime.delegation`), and refuses limits nobody would enforce.

Files made inside belong to the user outside (or to its subordinate ids), so
MLPACK_HOME stays the user's; :func:`rmtree` removes trees holding files of
subordinate ids, which the user can only do from inside.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from mlpack.errors import MlpackError, RunError
from mlpack.runtime.idmap import IdMapping, host_uid, in_user_namespace, user_mapping

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, BinaryIO, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["delegated", "delegated_unless_refused", "userns_problem", "call_in_userns", "enter_argv", "cgroup_parent", "rmtree", "is_rootless",
           "COVER_UNIFIED"]


# crun refuses hybrid hosts; root hides the empty cgroup2 with `umount -l`, but a
# user namespace may not unmount what it inherited, so it covers it instead.
COVER_UNIFIED = "/sys/fs/cgroup/unified"


def is_rootless() -> bool:
    """True for an ordinary user outside any namespace of its own (the caller must delegate)."""
    return os.geteuid() != 0


def _userns_refused(mapping: IdMapping, stderr: str) -> RunError:
    return RunError(
        f"cannot create a user namespace as {mapping.user}: {stderr.strip() or 'unshare failed'}",
        hint="user namespaces are refused here (sysctl user.max_user_namespaces=0, "
             "kernel.unprivileged_userns_clone=0, or a seccomp profile); ask an administrator to allow them, "
             "or run as root",
    )


class _Callback:
    """Stands in, inside the namespace, for a callable argument of the caller."""

    sink: BinaryIO | None = None

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if _Callback.sink is None:
            return
        import pickle  # only a delegated call pickles: a root start never loads it

        try:
            data = pickle.dumps(("cb", self.index, args, kwargs))
        except Exception:  # an event that does not pickle is progress only: drop it
            return
        _Callback.sink.write(data)
        _Callback.sink.flush()


def call_in_userns(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any],
                   mapping: IdMapping | None = None) -> Any:
    """Run ``fn(*args, **kwargs)`` in a fresh user + mount namespace and return what it returns."""
    import subprocess  # not at import: `mlpack run` starts a container without it

    import pickle

    mapping = mapping or user_mapping()
    callbacks: list[Callable[..., Any]] = []

    def swap(value: Any) -> Any:
        if callable(value) and not isinstance(value, type):
            callbacks.append(value)
            return _Callback(len(callbacks) - 1)
        return value

    try:
        payload = pickle.dumps((fn.__module__, fn.__qualname__, tuple(swap(a) for a in args),
                                {k: swap(v) for k, v in kwargs.items()}))
    except Exception as exc:
        raise RunError(f"cannot hand {fn.__qualname__} to the user namespace: {exc}",
                       hint="pass plain values (paths, references, option objects)") from exc
    rfd, wfd = os.pipe()
    try:
        proc = subprocess.Popen(
            [*mapping.unshare_argv(), sys.executable, "-m", "mlpack.runtime.delegate", str(wfd)],
            stdin=subprocess.PIPE, pass_fds=(wfd,),
        )
    except OSError as exc:
        os.close(rfd)
        os.close(wfd)
        raise RunError(f"cannot start unshare: {exc}", hint="install util-linux") from exc
    os.close(wfd)
    assert proc.stdin is not None
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    outcome: tuple[str, Any] | None = None
    with os.fdopen(rfd, "rb") as fh:
        while True:
            try:
                msg = pickle.load(fh)
            except EOFError:
                break
            except Exception as exc:  # an answer that does not unpickle
                outcome = ("err", RunError(f"bad answer from the user namespace: {exc}"))
                break
            if msg[0] == "cb":
                callbacks[msg[1]](*msg[2], **msg[3])
            else:
                outcome = (msg[0], msg[1])
    code = proc.wait()
    if outcome is None:
        problem = _try_unshare.__wrapped__(tuple(mapping.unshare_argv()))
        if problem is not None:
            raise _userns_refused(mapping, problem)
        raise RunError(f"{fn.__qualname__} died in the user namespace (exit {code})",
                       hint="its error is printed above; `mlpack info` shows the rootless set-up")
    kind, value = outcome
    if kind == "err":
        raise _explain(value, mapping)
    return value


TUN = "/dev/net/tun"
TUN_HINT = (f"the RUN network (slirp4netns) needs {TUN}, which only root may open here: an administrator runs "
            f"`chmod 0666 {TUN}` (Debian's default mode), or build with --network=none "
            "(or RUN --network=none) when the steps need no network")


def _explain(exc: BaseException, mapping: IdMapping) -> BaseException:
    """A failure that came from a privilege the user lacks, said as such, with the fix."""
    if isinstance(exc, MlpackError) and TUN in str(exc) and "Permission denied" in str(exc):
        exc.hint = TUN_HINT
        return exc
    return _explain_ids(exc, mapping)


def _explain_ids(exc: BaseException, mapping: IdMapping) -> BaseException:
    """A failure that came from an id the single-id mapping lacks, said as such, with the fix."""
    text = str(exc)
    if mapping.full or "Invalid argument" not in text:
        return exc
    if not isinstance(exc, MlpackError):
        exc = RunError(text)
    assert isinstance(exc, MlpackError)
    exc.hint = (f"only uid {mapping.uid} is mapped (to 0) in {mapping.user}'s user namespace, so files cannot "
                f"belong to other ids: an administrator gives {mapping.user} a subordinate range, e.g. "
                f"`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {mapping.user}` "
                "(and installs uidmap); `mlpack info` shows the mapping")
    return exc


def delegated(fn: F) -> F:
    """Make ``fn`` run in the user's namespace when an ordinary user calls it (as root: unchanged)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not is_rootless():
            return fn(*args, **kwargs)
        return call_in_userns(fn, args, kwargs)

    return wrapper  # type: ignore[return-value]


def delegated_unless_refused(fn: F) -> F:
    """:func:`delegated`, except that where user namespaces are refused (a seccomp profile,
    ``user.max_user_namespaces=0``) ``fn`` runs here, as the user: for work that needs no
    privilege in the cases that matter (a build without RUN), and that says so itself otherwise."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not is_rootless() or userns_problem() is None:
            return delegated(fn)(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def userns_problem(mapping: IdMapping | None = None) -> str | None:
    """Why the user cannot create its user namespace here (tried for real, once a process), or None."""
    return _try_unshare(tuple((mapping or user_mapping()).unshare_argv()))


@functools.lru_cache(maxsize=4)
def _try_unshare(argv: tuple[str, ...]) -> str | None:
    import subprocess  # not at import: `mlpack run` starts a container without it

    import tempfile

    # When unshare itself is refused, the helper it forked for --map-auto (newuidmap) waits
    # forever: it gets a process group of its own with unshare, which is killed after; and
    # stderr goes to a file, as a pipe it holds open would never reach EOF.
    with tempfile.TemporaryFile(mode="w+") as err:
        try:
            proc = subprocess.Popen([*argv, "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
        except OSError as exc:
            return f"cannot start unshare ({exc})"
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        err.seek(0)
        text = err.read().strip()
    if code is None:
        return "unshare did not finish in 30 s"
    return None if code == 0 else text or f"unshare exited {code}"


def serve_call(inp: BinaryIO, out: BinaryIO) -> int:
    """The delegate's side: read one call, run it, write ("ok", result) or ("err", error)."""
    import importlib
    import pickle

    module, qualname, args, kwargs = pickle.load(inp)
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    target = getattr(target, "__wrapped__", target)
    _Callback.sink = out
    try:
        msg: tuple[str, Any] = ("ok", target(*args, **kwargs))
    except BaseException as exc:  # the caller re-raises it
        msg = ("err", exc)
    try:
        data = pickle.dumps(msg)
    except Exception:
        exc = msg[1]
        err = exc if isinstance(exc, MlpackError) else None
        data = pickle.dumps(("err", RunError(str(exc), hint=getattr(err, "hint", None))))
    out.write(data)
    out.flush()
    return 0 if msg[0] == "ok" else 1


def _holder_pid(cdir: Path) -> int | None:
    """A live process in the container's namespaces: its monitor, else its init."""
    from mlpack.runtime.state import pid_alive, read_json

    st = read_json(cdir / "status.json")
    mine = os.readlink("/proc/self/ns/user")
    for pid in (st.get("monitor_pid"), st.get("pid")):
        if pid and pid_alive(pid):
            try:
                if os.readlink(f"/proc/{pid}/ns/user") != mine:
                    return int(pid)
            except OSError:
                continue
    return None


def enter_argv(cdir: str | os.PathLike[str] | None) -> list[str]:
    """The prefix that runs a command as root in the namespaces of the container at ``cdir``.

    Empty when no prefix is needed (root, or already inside). When no
    process of the container is left, a fresh namespace with the same ids
    (enough to delete its state).
    """
    if not is_rootless():
        return []
    pid = _holder_pid(Path(cdir)) if cdir else None
    if pid is not None:
        return ["nsenter", "--user", "--mount", "--target", str(pid), "--"]
    cover = f'mount -t tmpfs tmpfs {COVER_UNIFIED} 2>/dev/null; exec "$0" "$@"'
    return [*user_mapping().unshare_argv(), "sh", "-c", cover]


def cover_unified(env: dict[str, str] | None = None) -> None:
    """In a fresh namespace on a hybrid host where crun will run: hide the empty cgroup2 (see COVER_UNIFIED).

    Only for crun: runc copes with hybrid hosts, and would leave files in the cover.
    """
    from mlpack.runtime.host import _find, cgroup_mode
    from mlpack.runtime.mounts import _mount

    choice = (os.environ if env is None else env).get("MLPACK_RUNTIME")
    crun = os.path.basename(choice) == "crun" if choice else _find("runc") is None
    if crun and in_user_namespace() and cgroup_mode() == "hybrid":
        try:
            _mount("tmpfs", COVER_UNIFIED, "tmpfs", 0, "mode=755")
        except OSError:
            pass


def cgroup_parent(limits: Any = None, *, strict: bool = True) -> str | None:
    """Where this user's containers' cgroups go; None when nowhere (then no limit may be asked for).

    ``strict``: a limit asked for without a cgroup to enforce it is an error
    that names the fix; else (the builder's own default limits) the step
    runs without a cgroup.
    """
    uid = host_uid()
    if uid == 0:  # root: no delegation to look for (nor its module to import on every start)
        from mlpack.runtime.host import CGROUP_PARENT

        return CGROUP_PARENT
    from mlpack.runtime.delegation import limits_case

    case = limits_case(uid)
    if case.enforced:
        return case.cgroup_parent
    # --gpus is no cgroup limit here: rootless, the device nodes bound in are the boundary (adapt_config)
    asked = [f for f in ("cpus", "memory", "pids") if limits is not None and getattr(limits, f, None)]
    if asked and strict:
        user = user_mapping(uid).user
        flags = ", ".join("--" + ("pids-limit" if f == "pids" else f) for f in asked)
        raise RunError(
            f"{flags} cannot be enforced for {user}: {case.detail}",
            hint=f"an administrator runs once `mlpack system delegate {user}` (or drop {flags}); "
                 "`mlpack info` shows which case holds",
        )
    return None


def _mapped(gid: int, path: str = "/proc/self/gid_map") -> bool:
    try:
        with open(path) as fh:
            ranges = [tuple(int(x) for x in line.split()) for line in fh if line.strip()]
    except OSError:
        return True
    return any(inside <= gid < inside + count for inside, _, count in ranges)


def adapt_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Fit a config.json to the user namespace it will run in (unchanged outside one).

    devpts' ``gid=5`` (tty) only exists with a subordinate range; a host
    network namespace is not the user's, so /sys cannot be mounted anew and
    is bound read-only instead (what podman does too). Device nodes cannot be
    created, only bound from the same path on the host, and no device cgroup
    is enforced: each requested node must be there and openable by the user.
    """
    if not in_user_namespace():
        return cfg
    linux = cfg.get("linux", {})
    for dev in linux.get("devices", []):
        _check_device(dev)
    if not linux.get("cgroupsPath"):
        # No cgroup this user may write (cgroup_parent said so, and refused any limit that was
        # asked for): the builder's own default limits for RUN steps cannot apply.
        for key in ("cpu", "memory", "pids"):
            linux.get("resources", {}).pop(key, None)
    own_net = any(ns.get("type") == "network" for ns in cfg.get("linux", {}).get("namespaces", []))
    for m in cfg.get("mounts", []):
        if m.get("type") == "devpts" and not _mapped(5):
            m["options"] = [o for o in m.get("options", []) if o != "gid=5"]
        if m.get("type") == "sysfs" and not own_net:
            m.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
    return cfg


def _check_device(dev: dict[str, Any]) -> None:
    import stat

    path = dev["path"]
    try:
        st = os.stat(path)
    except OSError:
        st = None
    want = (stat.S_IFCHR if dev.get("type", "c") == "c" else stat.S_IFBLK, dev.get("major"), dev.get("minor"))
    if st is None or (stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)) != want:
        raise RunError(f"device {path} is not on this host as {dev.get('type', 'c')} {dev.get('major')}:"
                       f"{dev.get('minor')}: an ordinary user's container can only have device nodes bound in "
                       "from the same path, not created",
                       hint="make the CDI spec's hostPath the node's own path (nvidia-ctk cdi generate does), "
                            "or run as root")
    if not os.access(path, os.R_OK | os.W_OK):
        raise RunError(f"{user_mapping(host_uid()).user} cannot open {path} (mode {stat.filemode(st.st_mode)})",
                       hint="an administrator adds the user to the device's group (e.g. video or render); "
                            "rootless, the host's file permissions are what guards a device")


def rmtree(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` entirely, files of subordinate ids included (from inside a namespace)."""
    import subprocess  # not at import: `mlpack run` starts a container without it

    import shutil

    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path) or not is_rootless():
        return
    subprocess.run([*user_mapping().unshare_argv(), "rm", "-rf", "--", os.fspath(path)],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
