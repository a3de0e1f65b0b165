"""Finding 9: the seccomp profile, attacked from inside real crun and runc containers.

Each probe is a real system call made through ctypes by the host's Python in
a container. The control run (seccomp off) shows which attacks work on this
kernel without the profile; with the profile every one of them is EPERM,
while what a server needs (fork, AF_INET/AF_UNIX sockets, the personality
query) still works.
"""

from __future__ import annotations

import json
import os
import re
import struct
import urllib.request
from pathlib import Path

import pytest

from mlpack.runtime import ImageSource, run
from mlpack.types import Limits
from tests.integration.security import hostpython

pytestmark = [pytest.mark.integration, pytest.mark.runtime]

PROBE = Path(__file__).with_name("probe_syscalls.py")
ATTACKS = ("io_uring_setup", "pidfd_getfd", "process_madvise", "syslog", "personality_no_aslr", "unshare_user",
           "clone_newuser", "chroot", "sethostname", "setdomainname", "fanotify_init", "quotactl_fd",
           "socket_af_alg", "socket_af_vsock")
NEEDED = ("fork", "socket_af_inet", "socket_af_unix", "personality_query", "pidfd_open")


@pytest.fixture(scope="module")
def python_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.path.exists(hostpython.PYTHON):
        pytest.skip(f"{hostpython.PYTHON} is not installed")
    return hostpython.make_root(tmp_path_factory.mktemp("pyroot") / "root")


def _probe(root: Path, settings, cleanup, **options) -> dict[str, int]:
    src = ImageSource([root], hostpython.config(), ref="hostpython-dir")
    c = run(src, command=[hostpython.PYTHON, "/probe/probe_syscalls.py"], ports=(), detach=False,
            volumes=["/usr:/usr:ro", f"{PROBE.parent}:/probe:ro"], settings=settings, **options)
    cleanup.append(c)
    out = c.logs()
    line = next((x for x in out.splitlines() if x.startswith("PROBE ")), None)
    assert line, out
    return json.loads(line[len("PROBE "):])


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_attack_syscalls_are_refused_and_servers_still_work(runtime_settings, python_root, cleanup_containers):
    eperm = 1
    control = _probe(python_root, runtime_settings, cleanup_containers, seccomp=False)
    # Without a profile these attacks work on this kernel (an unprivileged container can do them).
    assert control["pidfd_getfd"] == 0 and control["personality_no_aslr"] == 0, control
    got = _probe(python_root, runtime_settings, cleanup_containers)
    refused = {name: got[name] for name in ATTACKS}
    assert refused == {name: eperm for name in ATTACKS}, got
    assert got["io_uring_setup_x32"] != 0  # the x32 entry is filtered too (EPERM, or ENOSYS without x32)
    assert got["clone3"] == 38  # ENOSYS: glibc falls back to clone, whose flags are checked
    assert {name: got[name] for name in NEEDED} == {name: 0 for name in NEEDED}, got
    worked = [name for name in ATTACKS if control[name] == 0]
    assert {"io_uring_setup", "pidfd_getfd", "personality_no_aslr", "unshare_user", "socket_af_vsock"} <= set(worked), control


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_ptrace_and_proc_mem_agree(runtime_settings, python_root, cleanup_containers):
    """ptrace-like access is consistent: a sibling's memory is reachable by both ways or neither."""
    script = (
        "import ctypes, os, sys, time\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(w, b'x'); time.sleep(60); os._exit(0)\n"
        "os.read(r, 1)\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "ptrace = libc.ptrace(16, pid, 0, 0) == 0 or ctypes.get_errno()\n"  # PTRACE_ATTACH
        "try:\n"
        "    mem = bool(open(f'/proc/{pid}/mem', 'rb').read(0) == b'') \n"
        "except OSError as e:\n"
        "    mem = e.errno\n"
        "print('PTRACE', ptrace, 'MEM', mem); os.kill(pid, 9)\n"
    )
    src = ImageSource([python_root], hostpython.config(), ref="hostpython-dir")
    c = run(src, command=[hostpython.PYTHON, "-c", script], ports=(), detach=False, volumes=["/usr:/usr:ro"],
            settings=runtime_settings)
    cleanup_containers.append(c)
    words = c.logs().split()
    assert "PTRACE" in words, c.logs()
    ptrace, mem = words[words.index("PTRACE") + 1], words[words.index("MEM") + 1]
    assert (ptrace == "True") == (mem == "True"), c.logs()


@pytest.mark.build
@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_the_serving_image_serves_under_the_profile(runtime_settings, serving_image, cleanup_containers):
    """The real model server (onnxruntime, uvicorn, numpy) needs nothing the allow-list leaves out."""
    c = run(serving_image.ref, limits=Limits(memory="512Mi", cpus=1), settings=runtime_settings)
    cleanup_containers.append(c)
    assert c.wait_healthy(timeout=120) == "healthy", c.logs(tail=30)
    status = c.exec(["python3", "-c", "print(open('/proc/1/status').read())"]).stdout
    assert re.search(r"^Seccomp:\s+2$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    body = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()
    req = urllib.request.Request(c.url + "/predict", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and json.loads(r.read())["outputs"]["label"] == [0, 2]
    assert "Operation not permitted" not in c.logs()


def _i386_io_uring_probe(path: Path) -> Path:
    """A 116-byte static i386 ELF: io_uring_setup(4, NULL) through ``int 0x80``, exit status = errno.

    The 32-bit entry has its own syscall numbers (425 here) and its own
    seccomp architecture token: a profile that lists only x86_64 would let
    it through. EFAULT (14) means the call reached the kernel, EPERM (1)
    that the profile refused it.
    """
    base = 0x08048000
    code = bytes.fromhex("B8A9010000" "BB04000000" "31C9" "CD80"  # eax=425 ebx=4 ecx=0; int 0x80
                         "F7D8" "89C3" "B801000000" "CD80")  # ebx=-eax; eax=1 (exit); int 0x80
    header, phdr = 52, 32
    size = header + phdr + len(code)
    elf = (b"\x7fELF\x01\x01\x01\x00" + bytes(8)
           + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, base + header + phdr, header, 0, 0, header, phdr, 1, 0, 0, 0)
           + struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000) + code)
    path.write_bytes(elf)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("runtime_name", ["crun", "runc"], indirect=True)
def test_the_i386_entry_is_filtered_too(runtime_settings, busybox_source, tmp_path: Path, cleanup_containers):
    probe = _i386_io_uring_probe(tmp_path / "probe32")
    codes = {}
    for seccomp in (False, True):
        c = run(busybox_source(), command=["/probe32"], volumes=[f"{probe}:/probe32:ro"], ports=(), detach=False,
                seccomp=seccomp, settings=runtime_settings)
        cleanup_containers.append(c)
        codes[seccomp] = c.exit_code
    if codes[False] != 14:
        pytest.skip(f"this kernel does not run i386 binaries or io_uring for them (exit {codes[False]})")
    assert codes[True] == 1  # EPERM from the profile's SCMP_ARCH_X86 filter
