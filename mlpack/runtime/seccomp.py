"""The default seccomp profile: an allow-list, as strict as Docker's default.

Everything not listed is refused with EPERM (``defaultAction`` ERRNO). The
list is the set of syscalls Docker's default profile (moby/profiles
``seccomp/default.json``) allows a container on x86 without capabilities,
with the same argument filters:

* ``clone`` only without any ``CLONE_NEW*`` namespace flag, and ``clone3``
  answered ENOSYS, since its flags live in memory where seccomp cannot look;
  glibc then falls back to ``clone``;
* ``personality`` only with the five harmless values (so ASLR cannot be
  switched off with ADDR_NO_RANDOMIZE);
* ``socket`` only for the address families Docker lists: AF_ALG (38) and
  AF_VSOCK (40, not network-namespaced) among those refused.

Syscalls that Docker ties to a capability (chroot to CAP_SYS_CHROOT, mount
and unshare to CAP_SYS_ADMIN, ...) are allowed only when the container has
that capability (build steps get Docker's build set, a served model none).
ptrace, process_vm_readv/writev are allowed as in Docker (kernels >= 4.8
check seccomp after ptrace): they reach no further than /proc/<pid>/mem
does, the same uid in the same pid namespace, so the two stay consistent.

Names a runtime's libseccomp does not know are skipped by crun and runc,
which leaves them refused: an older libseccomp only makes the profile
stricter. docs/security.md compares this profile with Docker's.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "default_profile",
    "ALLOWED_SYSCALLS",
    "CAPABILITY_SYSCALLS",
    "SOCKET_FAMILIES",
    "PERSONALITIES",
    "CLONE_NAMESPACE_FLAGS",
    "ARCHITECTURES",
]

EPERM = 1
ENOSYS = 38
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
# PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and the query value.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
# Every family below 12 (AF_UNIX 1, AF_INET 2, AF_INET6 10, ...), then netlink
# 16, packet 17 and the others Docker keeps; AF_ALG 38, AF_VSOCK 40 and every
# unlisted family are refused.
SOCKET_FAMILIES = (*range(12), 13, 14, 15, 16, 17, 18, 21, 22, 24, 26, 27, 28, 29, 30, 31, 32, 33, 35, 36,
                   39, 41, 42, 43, 44, 45)

_GROUPS: dict[str, tuple[str, ...]] = {
    "files": (
        "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range", "creat",
        "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fchdir",
        "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
        "flock", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
        "futimesat", "getcwd", "getdents", "getdents64", "lchown", "lchown32", "link", "linkat", "_llseek",
        "lseek", "lstat", "lstat64", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open", "openat",
        "openat2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
        "readlink", "readlinkat", "readv", "rename", "renameat", "renameat2", "rmdir", "sendfile",
        "sendfile64", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat",
        "sync", "sync_file_range", "syncfs", "tee", "truncate", "truncate64", "umask", "unlink", "unlinkat",
        "utime", "utimensat", "utimensat_time64", "utimes", "vmsplice", "write", "writev", "cachestat",
        "name_to_handle_at", "fanotify_mark", "inotify_add_watch", "inotify_init", "inotify_init1",
        "inotify_rm_watch", "statmount", "listmount",
    ),
    "xattrs": (
        "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "getxattrat", "lgetxattr",
        "listxattr", "listxattrat", "llistxattr", "lremovexattr", "lsetxattr", "removexattr",
        "removexattrat", "setxattr", "setxattrat",
    ),
    "memory": (
        "brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
        "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal", "msync", "munlock", "munlockall",
        "munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages",
    ),
    "processes": (
        "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "getcpu",
        "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
        "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getresgid", "getresgid32", "getresuid",
        "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "get_thread_area", "gettid",
        "getuid", "getuid32", "ioprio_get", "ioprio_set", "kill", "landlock_add_rule",
        "landlock_create_ruleset", "landlock_restrict_self", "modify_ldt", "pidfd_open", "pidfd_send_signal",
        "prctl", "prlimit64", "process_mrelease", "ptrace", "process_vm_readv", "process_vm_writev", "rseq",
        "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
        "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
        "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp",
        "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
        "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
        "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "set_thread_area",
        "set_tid_address", "setuid", "setuid32", "sysinfo", "tgkill", "tkill", "ugetrlimit", "uname", "vfork",
        "wait4", "waitid", "waitpid", "uretprobe",
    ),
    "signals_and_time": (
        "alarm", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
        "clock_nanosleep_time64", "getitimer", "gettimeofday", "nanosleep", "pause", "restart_syscall",
        "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
        "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "setitimer", "sigaltstack",
        "signalfd", "signalfd4", "sigprocmask", "sigreturn", "time", "timer_create", "timer_delete",
        "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
        "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
        "times", "adjtimex", "clock_adjtime", "clock_adjtime64",
    ),
    "waiting_and_ipc": (
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
        "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "futex", "futex_requeue", "futex_time64",
        "futex_wait", "futex_waitv", "futex_wake", "io_cancel", "ioctl", "io_destroy", "io_getevents",
        "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "ipc", "mq_getsetattr", "mq_notify",
        "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
        "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd", "pipe", "pipe2", "poll", "ppoll", "ppoll_time64",
        "pselect6", "pselect6_time64", "select", "_newselect", "semctl", "semget", "semop", "semtimedop",
        "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "getrandom",
    ),
    "sockets": (
        "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recv",
        "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg", "sendto",
        "setsockopt", "shutdown", "socketcall", "socketpair",
    ),
}
ALLOWED_SYSCALLS: frozenset[str] = frozenset(name for names in _GROUPS.values() for name in names)

# Allowed only with the capability that makes them meaningful (Docker's "includes.caps").
CAPABILITY_SYSCALLS: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
        "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount", "mount_setattr", "move_mount",
        "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
        "syslog", "umount", "umount2", "unshare",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
}


def _arg_rules(name: str, index: int, op: str, values: Iterable[int]) -> list[dict[str, Any]]:
    # One rule per value: the runtime ORs rules of the same syscall and action.
    return [{"names": [name], "action": "SCMP_ACT_ALLOW", "args": [{"index": index, "value": v, "op": op}]}
            for v in values]


def default_profile(capabilities: Iterable[str] = ()) -> dict[str, Any]:
    """The ``linux.seccomp`` object of config.json for a process with ``capabilities`` (CAP_* names)."""
    caps = set(capabilities)
    allowed = set(ALLOWED_SYSCALLS)
    for cap in caps:
        allowed.update(CAPABILITY_SYSCALLS.get(cap, ()))
    admin = "CAP_SYS_ADMIN" in caps
    rules: list[dict[str, Any]] = [{"names": sorted(allowed), "action": "SCMP_ACT_ALLOW"}]
    rules += _arg_rules("socket", 0, "SCMP_CMP_EQ", SOCKET_FAMILIES)
    rules += _arg_rules("personality", 0, "SCMP_CMP_EQ", PERSONALITIES)
    if not admin:
        # Allowed when (flags & CLONE_NEW*) == 0; clone3 hides its flags in memory.
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                                "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM, "architectures": list(ARCHITECTURES),
            "syscalls": rules}
