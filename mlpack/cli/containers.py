"""``mlpack run, ps, logs, stop, kill, rm, exec, stats`` (docker's spellings) and container inspect."""

from __future__ import annotations

import argparse
import json
import sys
import time

from mlpack.errors import ContainerNotFound, RunError
from mlpack.settings import Settings
from mlpack.types import Limits

TYPE_CHECKING = False  # typing is the type checker's: a CLI start (mlpack run) does not import it
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the container lifecycle sub-commands."""
    p = sub.add_parser("run", help="run an image as a container with enforced limits")
    p.add_argument("image", help="image reference in the store")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND", help="command (replaces the image's Cmd)")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    p.add_argument("--name")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--restart", default="no", help="no | on-failure[:N] | always | unless-stopped")
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CONTAINER",
                   help="publish a container port (on 127.0.0.1 unless an IP is given)")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every EXPOSEd port on a free port")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-u", "--user", help="user[:group] (default: the image's USER)")
    p.add_argument("-w", "--workdir")
    p.add_argument("--entrypoint", help="replace the image's Entrypoint")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CONTAINER[:ro]")
    p.add_argument("--network", default="private", choices=("private", "none", "host"),
                   help="private (default): own namespace, reachable only through -p; none; host")
    p.add_argument("--read-write", action="store_true", help="writable root filesystem (read-only by default)")
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP")
    p.add_argument("--cpus", type=float)
    p.add_argument("--cpuset-cpus")
    p.add_argument("-m", "--memory")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--gpus", help="all | N | 0,1 (through CDI specs in /etc/cdi, /var/run/cdi)")
    p.add_argument("--device", action="append", default=[], metavar="CDI_NAME", help="e.g. nvidia.com/gpu=0")
    p.add_argument("--hostname")
    p.add_argument("--health-cmd", help="shell command that says whether the container is healthy")
    p.add_argument("--health-interval", type=float, default=30.0, help="seconds")
    p.add_argument("--health-retries", type=int, default=3)
    p.add_argument("--health-timeout", type=float, default=30.0, help="seconds")
    p.add_argument("--health-start-period", type=float, default=0.0, help="seconds")
    p.add_argument("--no-healthcheck", action="store_true")
    p.set_defaults(handler=_run)

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show exited containers too")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=_ps)

    p = sub.add_parser("logs", help="show a container's output")
    p.add_argument("container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int)
    p.set_defaults(handler=_logs)

    p = sub.add_parser("stop", help="SIGTERM, then SIGKILL after a grace period")
    p.add_argument("containers", nargs="+")
    p.add_argument("-t", "--time", type=float, default=10.0, help="seconds before SIGKILL (default 10)")
    p.set_defaults(handler=_stop)

    p = sub.add_parser("kill", help="send a signal (default KILL)")
    p.add_argument("containers", nargs="+")
    p.add_argument("-s", "--signal", default="KILL")
    p.set_defaults(handler=_kill)

    p = sub.add_parser("rm", help="remove containers (nothing is left behind)")
    p.add_argument("containers", nargs="+")
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.set_defaults(handler=_rm)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("container")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user")
    p.add_argument("-w", "--workdir")
    p.set_defaults(handler=_exec)

    p = sub.add_parser("stats", help="CPU, memory and pids of running containers, from their cgroups")
    p.add_argument("containers", nargs="*")
    p.add_argument("--no-stream", action="store_true", help="one sample, then exit")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handler=_stats)


def _get(settings: Settings, ref: str) -> Any:
    from mlpack.runtime import get_container

    return get_container(settings, ref)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.runtime import Healthcheck, RunOptions, parse_ports, parse_restart, parse_volume, run

    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    check = None
    if args.health_cmd:
        check = Healthcheck(("/bin/sh", "-c", args.health_cmd), args.health_interval, args.health_timeout,
                            args.health_start_period, args.health_retries)
    options = RunOptions(
        command=tuple(cmd) or None,
        entrypoint=(args.entrypoint,) if args.entrypoint else None,
        name=args.name,
        ports=parse_ports(args.publish),
        env=tuple(args.env),
        user=args.user,
        workdir=args.workdir,
        network=args.network,
        read_write=args.read_write,
        cap_add=tuple(args.cap_add),
        volumes=tuple(parse_volume(v) for v in args.volume),
        devices=tuple(args.device),
        restart=parse_restart(args.restart),
        # attached: this process removes it after reading the exit code (a
        # monitor-side removal could race the read)
        auto_remove=args.rm and args.detach,
        hostname=args.hostname,
        healthcheck=check,
        no_healthcheck=args.no_healthcheck,
    )
    limits = Limits(cpus=args.cpus, memory=args.memory, pids=args.pids_limit, gpus=args.gpus,
                    cpuset_cpus=args.cpuset_cpus)
    container = run(args.image, limits=limits, ports=None if args.publish_all else options.ports,
                    settings=settings, options=options)
    if args.detach:
        print(container.id)
        return 0
    # Attached: stream the output until it exits, then exit with its code, as docker does.
    try:
        for chunk in container.follow_logs():
            sys.stdout.write(chunk)
            sys.stdout.flush()
    except KeyboardInterrupt:
        container.stop(timeout=10)
    code = container.wait()
    if container.oom_killed:
        print(f"mlpack run: container {container.name} was OOM-killed (limit {limits.memory_human()})",
              file=sys.stderr)
    if args.rm:
        container.remove(force=True)
    return code


def _age(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        from datetime import datetime, timezone  # for `ps` and `inspect` only, not on `run`'s path

        secs = (datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()
    except ValueError:
        return iso
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return f"{int(secs)} seconds ago"


def _status_text(state: dict[str, Any]) -> str:
    status = state.get("status", "unknown")
    if status == "running":
        text = "Up " + _age(state.get("started_at")).replace(" ago", "")
        health = (state.get("health") or {}).get("status")
        return f"{text} ({health})" if health else text
    if status == "exited":
        oom = " (OOMKilled)" if state.get("oom_killed") else ""
        return f"Exited ({state.get('exit_code')}){oom} {_age(state.get('finished_at'))}"
    return status.capitalize()


def _ps(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.runtime import list_containers

    containers = list_containers(settings, all=args.all)
    if args.quiet:
        for c in containers:
            print(c.short_id)
        return 0
    rows = []
    for c in containers:
        try:
            state = c.state()
            rows.append({"id": c.short_id, "image": c.image or "-", "command": " ".join(c.record.get("args", [])),
                         "created": c.record.get("created"), "status": state.get("status"),
                         "exit_code": state.get("exit_code"), "oom_killed": state.get("oom_killed", False),
                         "health": (state.get("health") or {}).get("status"), "status_text": _status_text(state),
                         "ports": ", ".join(f"{p['host_ip']}:{p['host_port']}->{p['container_port']}/tcp"
                                            for p in c.ports), "name": c.name})
        except ContainerNotFound:
            continue
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    cols = [("CONTAINER ID", "id"), ("IMAGE", "image"), ("COMMAND", "command"), ("STATUS", "status_text"),
            ("PORTS", "ports"), ("NAMES", "name")]
    for r in rows:
        if len(r["command"]) > 30:
            r["command"] = r["command"][:27] + "..."
    widths = [max([len(h)] + [len(str(r[k])) for r in rows]) for h, k in cols]
    print("   ".join(h.ljust(w) for (h, _), w in zip(cols, widths)).rstrip())
    for r in rows:
        print("   ".join(str(r[k]).ljust(w) for (_, k), w in zip(cols, widths)).rstrip())
    return 0


def _logs(args: argparse.Namespace, settings: Settings) -> int:
    c = _get(settings, args.container)
    if args.follow:
        try:
            for chunk in c.follow_logs(tail=args.tail):
                sys.stdout.write(chunk)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        return 0
    sys.stdout.write(c.logs(tail=args.tail))
    return 0


def _each(refs: list[str], settings: Settings, action: Any) -> int:
    status = 0
    for ref in refs:
        try:
            action(_get(settings, ref))
            print(ref)
        except RunError as exc:
            print(f"mlpack: error: {exc}", file=sys.stderr)
            status = 1
    return status


def _stop(args: argparse.Namespace, settings: Settings) -> int:
    return _each(args.containers, settings, lambda c: c.stop(timeout=args.time))


def _kill(args: argparse.Namespace, settings: Settings) -> int:
    return _each(args.containers, settings, lambda c: c.kill(args.signal))


def _rm(args: argparse.Namespace, settings: Settings) -> int:
    return _each(args.containers, settings, lambda c: c.remove(force=args.force))


def _exec(args: argparse.Namespace, settings: Settings) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise RunError("exec needs a command", hint="mlpack exec CONTAINER COMMAND...")
    c = _get(settings, args.container)
    return c.exec(cmd, env=args.env, user=args.user, workdir=args.workdir, capture=False).returncode


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n}B"


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from mlpack.runtime import list_containers

    containers = ([_get(settings, r) for r in args.containers] if args.containers
                  else list_containers(settings))
    while True:
        rows = []
        for c in containers:
            if c.status != "running":
                continue
            rows.append(c.stats(interval=0.5 if args.no_stream else 1.0 / max(len(containers), 1)))
        if args.format == "json":
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'CONTAINER ID':14}{'NAME':24}{'CPU %':>8}  {'MEM USAGE / LIMIT':>24}{'MEM %':>8}{'PIDS':>7}")
            for r in rows:
                mem = f"{_human(r['memory_usage'])} / {_human(r['memory_limit']) if r['memory_limit'] else 'unlimited'}"
                cpu = f"{r['cpu_percent']:.2f}%" if r["cpu_percent"] is not None else "-"
                memp = f"{r['memory_percent']:.2f}%" if r["memory_percent"] is not None else "-"
                print(f"{r['id'][:12]:14}{r['name'][:23]:24}{cpu:>8}  {mem:>24}{memp:>8}{r['pids'] or 0:>7}")
        sys.stdout.flush()
        if args.no_stream or not rows:
            return 0
        time.sleep(0.5)


def inspect_target(args: argparse.Namespace, settings: Settings) -> int | None:
    """`mlpack inspect CONTAINER`: the container's record and state; None when TARGET is no container."""
    from mlpack.runtime import get_container

    try:
        c = get_container(settings, args.target)
    except ContainerNotFound:
        return None
    data = c.inspect()
    if getattr(args, "format", "json") == "text":
        st = data["State"]
        print(f"container {c.id}\n  name: {c.name}\n  image: {c.image}\n  status: {_status_text(st)}")
        print(f"  url: {c.url}\n  limits: {c.record.get('limits')}\n  network: {c.record.get('network')}")
        print(f"  runtime: {c.record['runtime']['name']}\n  dir: {c.dir}")
    else:
        print(json.dumps(data, indent=2, default=str))
    return 0
