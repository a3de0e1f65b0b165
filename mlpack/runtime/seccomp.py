"""The default seccomp profile: allow by default, refuse what a server never needs.

Docker ships an allow-list of ~350 syscalls; keeping that correct by hand is
how profiles break Python wheels. This profile is the other way round: every
syscall Docker's default profile leaves out for a container without extra
capabilities is refused with EPERM, plus clone() with CLONE_NEWUSER
(user namespaces are the usual first step of a kernel exploit), and clone3 is
answered ENOSYS so glibc falls back to clone(), whose flags can be checked.
Every name here exists on x86_64 (libseccomp resolves names per architecture).
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_profile", "DENIED_SYSCALLS"]

EPERM = 1
ENOSYS = 38
CLONE_NEWUSER = 0x10000000

DENIED_SYSCALLS: tuple[str, ...] = (
    # kernel modules, kexec, reboot, swap, time, accounting
    "init_module", "finit_module", "delete_module", "create_module", "query_module",
    "get_kernel_syms", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
    "settimeofday", "clock_settime", "clock_adjtime", "acct",
    # mounts and namespaces
    "mount", "umount2", "pivot_root", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # looking into or changing other processes and the kernel
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "perf_event_open", "bpf",
    "lookup_dcookie", "userfaultfd", "name_to_handle_at", "open_by_handle_at",
    # kernel keyring
    "add_key", "request_key", "keyctl",
    # raw I/O and obsolete calls
    "iopl", "ioperm", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "quotactl",
    "vhangup",
    # NUMA policy of other processes
    "mbind", "set_mempolicy", "move_pages", "migrate_pages",
)


def default_profile() -> dict[str, Any]:
    """The ``linux.seccomp`` object of config.json for x86_64 (with x86/x32 siblings)."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": list(DENIED_SYSCALLS), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [
                    {"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
        ],
    }
