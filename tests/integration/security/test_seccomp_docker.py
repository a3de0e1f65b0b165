"""Finding 9: mlpack's seccomp profile compared, rule by rule, with Docker's default profile.

docker_seccomp_default.json holds the rules of moby/profiles'
seccomp/default.json. Both profiles are reduced to what they mean for an
x86_64 container with a given capability set: for each syscall, either
"allowed whatever the arguments" or the set of argument conditions under
which it is allowed, plus the errno rules. mlpack may allow nothing Docker
denies; what Docker allows and mlpack denies is listed in docs/security.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlpack.runtime.seccomp import ALLOWED_SYSCALLS, CAPABILITY_SYSCALLS, default_profile
from mlpack.runtime.spec import DOCKER_DEFAULT_CAPS

DOCKER = json.loads(Path(__file__).with_name("docker_seccomp_default.json").read_text())
DOCS = Path(__file__).resolve().parents[3] / "docs" / "security.md"
ANY = "any"
ARCH = "amd64"


def _applies(rule: dict, caps: set[str]) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and ARCH not in inc["arches"]:
        return False
    if ARCH in (exc.get("arches") or ()):
        return False
    if not set(inc.get("caps") or ()) <= caps:
        return False
    return not set(exc.get("caps") or ()) & caps


# Argument values the comparison tries: small numbers (socket families,
# personalities), every single bit (clone flags) and the special values.
VALUES = sorted(set(range(256)) | {1 << i for i in range(64)} | {0x20008, 0xFFFFFFFF, 0x40000, 0x10000011})
OPS = {
    "SCMP_CMP_EQ": lambda x, v, _: x == v, "SCMP_CMP_NE": lambda x, v, _: x != v,
    "SCMP_CMP_LT": lambda x, v, _: x < v, "SCMP_CMP_LE": lambda x, v, _: x <= v,
    "SCMP_CMP_GT": lambda x, v, _: x > v, "SCMP_CMP_GE": lambda x, v, _: x >= v,
    "SCMP_CMP_MASKED_EQ": lambda x, v, two: (x & v) == two,
}


def _values(args: list[dict]) -> frozenset[tuple[int, int]]:
    """The (argument index, value) pairs a rule's conditions let through, over VALUES."""
    assert len({a["index"] for a in args}) == 1, args  # every rule of both profiles tests one argument
    index = args[0]["index"]
    ok = [x for x in VALUES if all(OPS[a["op"]](x, a["value"], a.get("valueTwo", 0)) for a in args)]
    return frozenset((index, x) for x in ok)


def meaning(profile: dict, caps: set[str]) -> tuple[dict[str, object], dict[str, int]]:
    """({syscall: ANY or the set of allowed (index, value)}, {syscall: errno}) for ``caps`` on x86_64."""
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed: dict[str, object] = {}
    errno: dict[str, int] = {}
    for rule in profile["syscalls"]:
        if not _applies(rule, caps):
            continue
        for name in rule["names"]:
            if rule["action"] == "SCMP_ACT_ALLOW":
                if not rule.get("args") or allowed.get(name) == ANY:
                    allowed[name] = ANY
                else:
                    allowed[name] = frozenset(allowed.get(name, frozenset())) | _values(rule["args"])
            elif rule["action"] == "SCMP_ACT_ERRNO":
                errno[name] = rule.get("errnoRet", 1)
    return allowed, errno


def _exceeds(a: object, b: object) -> object:
    """What ``a`` allows that ``b`` does not (None when nothing)."""
    if b == ANY or a is None:
        return None
    if b is None or a == ANY:
        return a
    extra = frozenset(a) - frozenset(b)  # type: ignore[arg-type]
    return extra or None


def differences(caps: set[str]) -> tuple[dict[str, object], dict[str, object]]:
    """(what mlpack allows and Docker denies, what Docker allows and mlpack denies)."""
    ours, our_errno = meaning(default_profile(caps), caps)
    docker, docker_errno = meaning(DOCKER, caps)
    names = set(ours) | set(docker)
    more = {n: x for n in names if (x := _exceeds(ours.get(n), docker.get(n))) is not None}
    less = {n: x for n in names if (x := _exceeds(docker.get(n), ours.get(n))) is not None}
    assert our_errno == {n: e for n, e in docker_errno.items() if n not in ours}, (our_errno, docker_errno)
    return more, less


@pytest.mark.parametrize("caps", [(), DOCKER_DEFAULT_CAPS, ("CAP_SYS_ADMIN", "CAP_SYS_PTRACE")],
                         ids=["served-model", "build-step", "cap-add"])
def test_mlpack_allows_nothing_docker_denies(caps: tuple[str, ...]) -> None:
    more, _ = differences(set(caps))
    assert more == {}


def test_docs_table_lists_what_docker_allows_and_mlpack_denies() -> None:
    table = DOCS.read_text().split("<!-- seccomp-table -->")[1]
    rows = dict(re.findall(r"^\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|$", table, re.M))
    more, less = differences(set())
    less.pop("riscv_hwprobe", None)  # no such system call on x86
    assert more == {} and rows["mlpack allows, Docker refuses"] == "nothing"
    row = rows["Docker allows, mlpack refuses"]
    assert set(re.findall(r"`(\w+)`", row)) == set(less)
    below = {v for _, v in less["socket"] if v < 46}  # type: ignore[union-attr]
    listed = [int(x) for x in re.findall(r"\b(\d+)\b", row.split("families")[1].split("(")[0])]
    assert set(listed[:-1]) == below and listed[-1] == 46 and all(v >= 46 or v in below
                                                                    for _, v in less["socket"])  # type: ignore[union-attr]


def test_the_attacks_of_the_issue_are_outside_the_allow_list() -> None:
    allowed, errno = meaning(default_profile(()), set())
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register", "pidfd_getfd", "process_madvise",
                 "syslog", "chroot", "sethostname", "setdomainname", "fanotify_init", "quotactl_fd", "unshare",
                 "mount", "bpf", "keyctl", "userfaultfd"):
        assert name not in allowed
    assert not any(v & 0x7E020000 for _, v in allowed["clone"]) and (0, 0x11) in allowed["clone"]
    assert errno == {"clone3": 38}
    assert {v for _, v in allowed["personality"]} == {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}
    families = {v for _, v in allowed["socket"]}
    assert 38 not in families and 40 not in families and {1, 2, 10, 16} <= families
    assert default_profile(())["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def test_every_name_is_one_docker_knows() -> None:
    known = {n for rule in DOCKER["syscalls"] for n in rule["names"]}
    names = set(ALLOWED_SYSCALLS) | {n for v in CAPABILITY_SYSCALLS.values() for n in v}
    assert names - known == set()
