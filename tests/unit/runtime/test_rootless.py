"""Rootless pieces that need no root: id ranges, the limit-enforcement case, config fitting, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpack.errors import BuildError, RunError
from mlpack.runtime import rootless
from mlpack.runtime.delegation import hierarchies, limits_case, user_cgroup
from mlpack.runtime.idmap import IdMapping, IdRange, host_uid, in_user_namespace, read_subids
from mlpack.types import Limits


def test_read_subids_finds_the_user_by_name_or_uid(tmp_path: Path) -> None:
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n# junk\nbob:x:1\n1005:300000:1000\ncarol:400000:0\n")
    assert read_subids(f, "alice", 1001) == IdRange(100000, 65536)
    assert read_subids(f, "dave", 1005) == IdRange(300000, 1000)
    assert read_subids(f, "bob", 1002) is None  # a malformed line is no range
    assert read_subids(f, "carol", 1003) is None  # an empty range is none
    assert read_subids(tmp_path / "missing", "alice", 1001) is None


def test_mapping_is_full_only_with_both_ranges_and_the_helpers() -> None:
    r = IdRange(100000, 65536)
    full = IdMapping("alice", 1001, 1001, r, r, helpers=True)
    assert full.full and full.size == 65536 and "--map-auto" in full.unshare_argv()
    assert "subordinate ids 100000-165535 -> 1-65535" in full.describe()
    for single in (IdMapping("bob", 1002, 1002, None, None, helpers=True),
                   IdMapping("bob", 1002, 1002, r, None, helpers=True),
                   IdMapping("bob", 1002, 1002, r, r, helpers=False)):
        assert not single.full and single.size == 1 and "--map-auto" not in single.unshare_argv()
        assert single.unshare_argv()[:2] == ["unshare", "--user"] and "--map-root-user" in single.unshare_argv()
        assert single.describe().startswith("single id")
    assert "package uidmap" in IdMapping("bob", 1002, 1002, r, r, helpers=False).describe()


def test_host_uid_reads_what_zero_maps_to(tmp_path: Path) -> None:
    init = tmp_path / "init"
    init.write_text("         0          0 4294967295\n")
    assert not in_user_namespace(str(init))
    assert host_uid(str(init)) == os.geteuid()
    inner = tmp_path / "inner"
    inner.write_text(f"{os.geteuid()} 1001 1\n")
    assert in_user_namespace(str(inner)) and host_uid(str(inner)) == 1001


def _fake_v1(root: Path, uid_dirs: dict[str, int | None]) -> Path:
    """A v1-looking cgroup root: controllers with cgroup.procs and, per controller, a user dir or not."""
    for ctrl, owner in uid_dirs.items():
        (root / ctrl).mkdir(parents=True)
        (root / ctrl / "cgroup.procs").write_text("")
        if owner is not None:
            (root / ctrl / user_cgroup(4242)).mkdir(parents=True)
            if os.geteuid() == 0:
                os.chown(root / ctrl / user_cgroup(4242), owner, owner)
    (root / "unified").mkdir()
    return root


def test_limits_case_names_each_case(tmp_path: Path) -> None:
    me = os.geteuid()
    assert limits_case(0, tmp_path).kind == "root"
    full = _fake_v1(tmp_path / "a", {"cpu": me, "memory": me, "pids": me})
    assert [h.name for h in hierarchies(full)] == ["cpu", "memory", "pids"]  # never the hybrid's unified
    if me != 4242:
        # the dirs exist but belong to the caller, not to 4242: no delegation for 4242
        case = limits_case(4242, full)
        assert case.kind == "none" and not case.enforced and "not its own" in case.detail
    if me == 0:  # only root can hand a directory to 4242
        partial = _fake_v1(tmp_path / "b", {"cpu": 4242, "memory": None})
        case = limits_case(4242, partial)
        assert case.kind == "none" and "memory" in case.detail
        whole = _fake_v1(tmp_path / "d", {"cpu": 4242, "memory": 4242})
        assert limits_case(4242, whole).kind == "mlpack"


def test_limits_case_is_mlpack_when_every_controller_is_delegated(tmp_path: Path) -> None:
    me = os.geteuid()
    root = tmp_path / "c"
    for ctrl in ("cpu", "memory", "pids"):
        (root / ctrl / user_cgroup(me)).mkdir(parents=True)
        (root / ctrl / "cgroup.procs").write_text("")
    case = limits_case(me, root) if me else None
    if me:  # as root the answer is "root" whatever is delegated
        assert case is not None and case.kind == "mlpack" and case.cgroup_parent == user_cgroup(me)
    assert limits_case(0, root).cgroup_parent == "mlpack"


def test_a_limit_without_a_cgroup_names_the_delegate_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlpack.runtime import delegation

    monkeypatch.setattr(rootless, "host_uid", lambda: 4242)
    monkeypatch.setattr(delegation, "limits_case",
                        lambda uid: delegation.LimitsCase("none", None, "no cgroup this user may write"))
    with pytest.raises(RunError) as err:
        rootless.cgroup_parent(Limits(cpus=0.5, pids=10))
    assert "--cpus, --pids-limit cannot be enforced" in err.value.message
    assert "mlpack system delegate" in err.value.hint
    assert rootless.cgroup_parent(Limits()) is None  # nothing asked: runs without a cgroup
    assert rootless.cgroup_parent(Limits(memory="64m"), strict=False) is None  # the builder's defaults


def test_adapt_config_outside_a_user_namespace_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"mounts": [{"type": "devpts", "options": ["gid=5"]}, {"type": "sysfs"}], "linux": {"namespaces": []}}
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: False)
    assert rootless.adapt_config(cfg) == {"mounts": [{"type": "devpts", "options": ["gid=5"]}, {"type": "sysfs"}],
                                          "linux": {"namespaces": []}}


def test_adapt_config_in_a_single_id_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rootless, "in_user_namespace", lambda: True)
    monkeypatch.setattr(rootless, "_mapped", lambda gid: gid == 0)
    host_net = {"mounts": [{"type": "devpts", "options": ["newinstance", "gid=5", "mode=620"]},
                           {"type": "sysfs", "source": "sysfs", "options": ["ro"]}],
                "linux": {"namespaces": [{"type": "pid"}]}}
    out = rootless.adapt_config(host_net)
    assert out["mounts"][0]["options"] == ["newinstance", "mode=620"]
    assert out["mounts"][1]["type"] == "bind" and out["mounts"][1]["source"] == "/sys"
    own_net = {"mounts": [{"type": "sysfs", "source": "sysfs"}], "linux": {"namespaces": [{"type": "network"}]}}
    assert rootless.adapt_config(own_net)["mounts"][0]["type"] == "sysfs"


def test_a_missing_id_is_explained_only_for_a_single_id_mapping() -> None:
    single = IdMapping("bob", 1002, 1002, None, None, helpers=True)
    r = IdRange(100000, 65536)
    full = IdMapping("alice", 1001, 1001, r, r, helpers=True)
    failed = BuildError("RUN failed: chown: /out/a: Invalid argument", hint="fix the command")
    assert rootless._explain_ids(failed, full).hint == "fix the command"
    explained = rootless._explain_ids(failed, single)
    assert "subordinate range" in explained.hint and "usermod --add-subuids" in explained.hint
    other = BuildError("RUN failed: exit 2", hint="fix the command")
    assert rootless._explain_ids(other, single).hint == "fix the command"
    plain = rootless._explain_ids(OSError(22, "Invalid argument"), single)
    assert isinstance(plain, RunError) and "bob" in plain.hint


def test_serve_call_returns_results_callbacks_and_errors(tmp_path: Path) -> None:
    import io
    import pickle

    cb = rootless._Callback(0)
    inp = io.BytesIO(pickle.dumps(("mlpack.runtime.idmap", "read_subids", (tmp_path / "none", "x", 1), {})))
    out = io.BytesIO()
    assert rootless.serve_call(inp, out) == 0
    assert pickle.loads(out.getvalue()) == ("ok", None)
    out = io.BytesIO()
    inp = io.BytesIO(pickle.dumps(("mlpack.types", "Limits", (), {"cpus": -1})))
    assert rootless.serve_call(inp, out) == 1
    kind, exc = pickle.loads(out.getvalue())
    assert kind == "err" and "positive" in str(exc)
    rootless._Callback.sink = out = io.BytesIO()
    cb("event", n=1)
    assert pickle.loads(out.getvalue()) == ("cb", 0, ("event",), {"n": 1})
    rootless._Callback.sink = None


def test_a_container_without_a_cgroup_never_reads_the_hosts_counters(tmp_path: Path) -> None:
    from mlpack.runtime.cgroups import oom_kills, read_stats

    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
    (tmp_path / "memory" / "memory.usage_in_bytes").write_text("123456789\n")
    assert oom_kills("", tmp_path) == 0
    stats = read_stats("", tmp_path)
    assert (stats.memory_usage, stats.memory_limit, stats.cpu_usage_ns, stats.oom_kills) == (None, None, None, 0)
