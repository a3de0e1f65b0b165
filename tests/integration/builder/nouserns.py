"""Run a command where no container can run: a seccomp filter refuses new namespaces.

    python nouserns.py COMMAND [ARG...]

installs (for this process and everything it starts; no_new_privs is set, so
it cannot be lifted) a seccomp filter that makes ``unshare`` and ``clone``
with any ``CLONE_NEW*`` flag fail with EPERM, ``setns`` too, and ``clone3``
answer ENOSYS (its flags are in memory, out of seccomp's reach; glibc then
uses ``clone``), which is what a notebook pod's default seccomp profile
does; then it executes COMMAND. x86_64 only.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38
AUDIT_ARCH_X86_64 = 0xC000003E
CLONE_NEW_ANY = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
NR_CLONE, NR_UNSHARE, NR_SETNS, NR_CLONE3 = 56, 272, 308, 435
LD_ABS_W, JEQ_K, JSET_K, JGE_K, RET_K = 0x20, 0x15, 0x45, 0x35, 0x06


def _program() -> bytes:
    insns = [
        (LD_ABS_W, 0, 0, 4),                       # 0: arch
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),          # 1
        (RET_K, 0, 0, RET_ERRNO | EPERM),          # 2: another ABI: refused
        (LD_ABS_W, 0, 0, 0),                       # 3: syscall number
        (JGE_K, 9, 0, 0x40000000),                 # 4: x32 numbers -> 14 (refused)
        (JEQ_K, 5, 0, NR_UNSHARE),                 # 5 -> 11
        (JEQ_K, 4, 0, NR_CLONE),                   # 6 -> 11
        (JEQ_K, 2, 0, NR_CLONE3),                  # 7 -> 10
        (JEQ_K, 5, 0, NR_SETNS),                   # 8 -> 14
        (RET_K, 0, 0, RET_ALLOW),                  # 9
        (RET_K, 0, 0, RET_ERRNO | ENOSYS),         # 10
        (LD_ABS_W, 0, 0, 16),                      # 11: args[0], low 32 bits (the flags)
        (JSET_K, 1, 0, CLONE_NEW_ANY),             # 12 -> 14
        (RET_K, 0, 0, RET_ALLOW),                  # 13
        (RET_K, 0, 0, RET_ERRNO | EPERM),          # 14
    ]
    return b"".join(struct.pack("=HBBI", *i) for i in insns), len(insns)


def install() -> None:
    """Install the filter in this process (inherited by children and kept across exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    code, count = _program()
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(count, ctypes.addressof(buf))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: nouserns.py COMMAND [ARG...]")
    install()
    os.execvp(sys.argv[1], sys.argv[1:])
