"""The offline base for another architecture (linux/arm64 on an amd64 host), without qemu.

A foreign tree cannot run its maintainer scripts here (no binfmt emulation),
so mmdebstrap only extracts the packages (``--variant=extract --arch=...``,
merged /usr by its hook) and the extract hook of :func:`extract_hook` does, as
plain file operations, what the scripts a model image needs would have done:
/etc/passwd and /etc/group from base-passwd's masters, the CA bundle from
the certificates ca-certificates ships, and a dpkg status listing every
extracted package (``unpacked``: nothing was configured), which is where
the glibc version of the wheels' manylinux tag is read.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FOREIGN_PACKAGES", "foreign_args"]

# what deps="context" reads (python3.11 and its stdlib, users, glibc) and what a model server runs on
FOREIGN_PACKAGES = ("python3", "libstdc++6", "libgomp1", "ca-certificates", "base-passwd", "libc6")
_MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")


def extract_hook(remove: tuple[str, ...] = ()) -> str:
    """The shell of the extract hook (``$1`` is the tree)."""
    script = [
        "export LC_ALL=C",  # the same order of packages in the status on every machine
        'cp "$1/usr/share/base-passwd/passwd.master" "$1/etc/passwd"',
        'cp "$1/usr/share/base-passwd/group.master" "$1/etc/group"',
        'mkdir -p "$1/etc/ssl/certs"',
        'find "$1/usr/share/ca-certificates" -name "*.crt" | sort | xargs -r cat > "$1/etc/ssl/certs/ca-certificates.crt"',
        'for d in "$1"/var/cache/apt/archives/*.deb; do dpkg-deb -f "$d"; echo "Status: install ok unpacked"; echo; done'
        ' > "$1/var/lib/dpkg/status"',
        ': > "$1/etc/resolv.conf"; echo mlpack > "$1/etc/hostname"',
    ]
    if remove:
        script.append(f'cd "$1" && rm -rf {" ".join(remove)}')
    return "; ".join(script)


def foreign_args(arch: str, packages: tuple[str, ...], remove: tuple[str, ...] = ()) -> list[str]:
    """mmdebstrap's arguments (before the excludes, suite, target and mirrors) for ``arch``."""
    args = ["--variant=extract", f"--arch={arch}", f"--include={','.join(packages)}", "--format=tar", "--quiet"]
    if _MERGED_USR_HOOKS.is_dir():
        args.append(f"--hook-dir={_MERGED_USR_HOOKS}")
    args.append(f"--extract-hook={extract_hook(remove)}")
    return args
