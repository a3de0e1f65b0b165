"""Run inside a container: try each attack syscall, print {name: errno or 0} as JSON.

Kept free of mlpack imports: it runs under the host's /usr/bin/python3 in a
bare root. A result of 0 means the call succeeded (the attack worked).
"""

import ctypes
import errno
import json
import os
import socket

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
X32 = 0x40000000
NR = {"io_uring_setup": 425, "pidfd_open": 434, "pidfd_getfd": 438, "process_madvise": 440, "syslog": 103,
      "personality": 135, "unshare": 272, "chroot": 161, "sethostname": 170, "setdomainname": 171,
      "fanotify_init": 300, "quotactl_fd": 443, "clone": 56, "clone3": 435, "ptrace": 101}


def call(nr, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return (0, ret) if ret >= 0 else (ctypes.get_errno(), ret)


out = {}
params = (ctypes.c_char * 120)()
err, fd = call(NR["io_uring_setup"], 4, ctypes.addressof(params))
out["io_uring_setup"] = err
err, _ = call(NR["io_uring_setup"] | X32, 4, ctypes.addressof(params))
out["io_uring_setup_x32"] = err
err, pidfd = call(NR["pidfd_open"], os.getpid(), 0)
out["pidfd_open"] = err
out["pidfd_getfd"] = call(NR["pidfd_getfd"], pidfd, 0, 0)[0] if pidfd >= 0 else -1
iov = (ctypes.c_char * 4096)()
vec = (ctypes.c_void_p * 2)(ctypes.addressof(iov), 4096)
out["process_madvise"] = call(NR["process_madvise"], pidfd, ctypes.addressof(vec), 1, 20, 0)[0] if pidfd >= 0 else -1
out["syslog"] = call(NR["syslog"], 10, 0, 0)[0]  # SYSLOG_ACTION_SIZE_BUFFER
out["personality_query"] = call(NR["personality"], 0xFFFFFFFF)[0]
out["personality_no_aslr"] = call(NR["personality"], 0x0040000)[0]  # ADDR_NO_RANDOMIZE
out["unshare_user"] = call(NR["unshare"], 0x10000000)[0]
out["clone_newuser"] = call(NR["clone"], 0x10000000 | 17, 0, 0, 0, 0)[0]  # the child, if any, exits at once
out["clone3"] = call(NR["clone3"], 0, 0)[0]
slash = ctypes.create_string_buffer(b"/")
out["chroot"] = call(NR["chroot"], ctypes.addressof(slash))[0]
name = ctypes.create_string_buffer(b"evil")
out["sethostname"] = call(NR["sethostname"], ctypes.addressof(name), 4)[0]
out["setdomainname"] = call(NR["setdomainname"], ctypes.addressof(name), 4)[0]
out["fanotify_init"] = call(NR["fanotify_init"], 0, 0)[0]
out["quotactl_fd"] = call(NR["quotactl_fd"], 0, 0, 0, 0)[0]
for fam, label in ((38, "socket_af_alg"), (40, "socket_af_vsock"), (2, "socket_af_inet"), (1, "socket_af_unix")):
    try:
        socket.socket(fam, socket.SOCK_SEQPACKET if fam == 38 else socket.SOCK_STREAM).close()
        out[label] = 0
    except OSError as exc:
        out[label] = exc.errno
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = 0 if os.waitpid(pid, 0)[1] >> 8 == 7 else -1
out["EPERM"] = errno.EPERM
print("PROBE " + json.dumps(out))
