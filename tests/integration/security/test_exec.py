"""Finding 10: `mlpack exec` and the HEALTHCHECK run as the container's own process, not as root.

Attack: a user (or an image's health check) execs into a container whose
server runs as ``app`` (uid 1000) without capabilities; before, the exec'd
process ran as uid 0 without noNewPrivileges, and ``-u 1000`` got gid 0.
"""

from __future__ import annotations

import re

import pytest

from mlpack.runtime import run

pytestmark = [pytest.mark.integration, pytest.mark.runtime]

STATUS = "grep -E '^(Uid|Gid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"


def _fields(text: str) -> dict[str, str]:
    return {k: " ".join(v.split()) for k, v in re.findall(r"^(\w+):[ \t]*(.*)$", text, re.M)}


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_exec_and_healthcheck_keep_the_containers_user_and_confinement(runtime_settings, busybox_source,
                                                                       cleanup_containers):
    # Generous timeout and retries: this is about who the check runs as, not how fast (a loaded
    # machine may take seconds per exec).
    check = {"Test": ["CMD-SHELL", STATUS], "Interval": 50_000_000, "Timeout": 60_000_000_000, "Retries": 1000}
    c = run(busybox_source(User="app", Healthcheck=check), command=["sleep", "60"], ports=(),
            settings=runtime_settings)
    cleanup_containers.append(c)
    main = _fields(c.exec(["sh", "-c", "cat /proc/1/status"]).stdout)
    assert main["Uid"].split()[0] == "1000" and main["NoNewPrivs"] == "1" and main["Seccomp"] == "2"

    default = _fields(c.exec(["sh", "-c", STATUS]).stdout)
    assert default["Uid"] == "1000 1000 1000 1000" and default["Gid"] == "1000 1000 1000 1000"
    assert default["Groups"] == main["Groups"] == "50"
    assert default["CapEff"] == default["CapBnd"] == main["CapBnd"] == "0000000000000000"
    assert default["NoNewPrivs"] == "1" and default["Seccomp"] == "2"

    as_uid = _fields(c.exec(["sh", "-c", STATUS], user="1000").stdout)
    assert as_uid["Uid"].split()[0] == "1000" and as_uid["Gid"].split()[0] == "1000"  # the user's gid, not 0
    as_root = c.exec(["sh", "-c", STATUS], user="0")
    root = _fields(as_root.stdout)
    assert as_root.returncode == 0 and "CapEff" in as_root.stdout, (as_root.stdout, as_root.stderr)
    assert root["Uid"].split()[0] == "0"  # asked for: root, but still without capabilities or a way up
    assert root["CapEff"] == "0000000000000000" and root["NoNewPrivs"] == "1" and root["Seccomp"] == "2"
    # an exec'd process cannot undo the profile either
    refused = c.exec(["unshare", "-r", "true"])
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr

    assert c.wait_healthy(timeout=300) == "healthy"
    health = c.state()["health"]
    out = _fields(next(e for e in health["log"] if e["exit_code"] == 0)["output"])
    assert out["Uid"].split()[0] == "1000" and out["Gid"].split()[0] == "1000"
    assert out["CapEff"] == "0000000000000000" and out["NoNewPrivs"] == "1" and out["Seccomp"] == "2"
    assert list(c.dir.glob("exec-*.json")) == []  # each exec's process file is removed after it
