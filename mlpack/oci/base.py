"""The offline base image: Debian + python3 bootstrapped with mmdebstrap.

``bootstrap(settings)`` stores ``localhost/mlpack/python:3.11`` (BASE_REF):
made from ``mmdebstrap --variant=essential`` with python3,
python3-venv, ca-certificates, libstdc++6 and libgomp1, docs, man pages, locales,
iconv modules, the stdlib's tests, perl and the tools a Python server never runs
(util-linux, login/PAM, systemd's libraries, ...: ``BaseOptions.purge_essential``)
dropped, using the host's Debian apt sources and apt proxy settings. With the
same SOURCE_DATE_EPOCH and the same mirror content the layers are the same.
It is what rendered Dockerfiles name when no registry can be reached. It has
two layers: the runtime (everything a serving container runs) and what only a
builder stage runs (``BaseOptions.builder_only``: pip's and setuptools' wheels
for ``python3 -m venv``, dpkg), split by dpkg's own database
(:mod:`mlpack.oci.basesplit`). The first layer alone is also stored, as
``runtime_ref(ref)`` (``localhost/mlpack/python:3.11-runtime``): the image a
serving image's runtime stage starts from.
``recipe(options)`` is stored as the RECIPE_LABEL label; ``current(store)``
treats a base made by another recipe as absent, so changed trims rebuild it.
"""

from __future__ import annotations

import datetime as _dt
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpack.errors import ImageNotFound, StoreError
from mlpack.oci.basesplit import split_packages
from mlpack.oci.layer import LayerOptions, write_dir
from mlpack.oci.image import Image
from mlpack.oci.foreignbase import FOREIGN_PACKAGES, foreign_args
from mlpack.oci.layout import Store
from mlpack.oci.multiarch import add_platform
from mlpack.oci.platforms import host_platform, platform_descriptor
from mlpack.oci.unpack import UnpackOptions, apply_layer
from mlpack.settings import Settings
from mlpack.oci.runtimebase import RECIPE_LABEL, make_runtime_image, runtime_image, runtime_ref
from mlpack.types import DEFAULT_PYTHON, LOCAL_BASE, LOCAL_RUNTIME_BASE

__all__ = ["BASE_REF", "RUNTIME_REF", "RECIPE_LABEL", "BaseOptions", "bootstrap", "current", "import_rootfs_tar",
           "host_apt_sources", "host_apt_options", "make_runtime_image", "recipe", "runtime_image", "runtime_ref"]

BASE_REF = LOCAL_BASE.format(python=DEFAULT_PYTHON)  # the offline base of mlpack.types
RUNTIME_REF = LOCAL_RUNTIME_BASE.format(python=DEFAULT_PYTHON)  # its runtime image (runtime_ref)
DEFAULT_EPOCH = 1_700_000_000  # fixed, so the digest depends only on package content
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)
# What a Python server never runs (checked by tests/integration/builder/test_slim_image.py, which
# imports every stdlib and site-packages module of the serving image and serves from it): glibc's
# iconv modules (Python has its own codecs; UTF-8 and Latin-1 are built into glibc), then, removed
# once the packages' postinst compiled them, the stdlib's own tests, lib2to3, pydoc's topic pages
# and CPython's test extensions.
_SLIM_EXCLUDES = ("path-exclude=/usr/lib/*/gconv/*.so",)
_SLIM_REMOVE = ("usr/lib/python3*/test", "usr/lib/python3*/lib2to3", "usr/lib/python3*/pydoc_data",
                "usr/lib/python3*/lib-dynload/_test*", "usr/lib/python3*/lib-dynload/_ctypes_test*",
                "usr/lib/python3*/lib-dynload/_xxtestfuzz*", "usr/lib/python3*/lib-dynload/xxlimited*",
                # nis (deprecated, gone in 3.13) is the only user of libnsl, libtirpc and Kerberos;
                # _dbm (dbm.ndbm) the only one of Berkeley DB (dbm and shelve fall back to dbm.dumb);
                # localedef compiles locales, and C.UTF-8 ships compiled.
                "usr/lib/python3*/lib-dynload/nis.*", "usr/lib/python3*/lib-dynload/_dbm.*",
                "usr/bin/localedef")
_APT_KEYS = ("Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Valid-Until", "Acquire::Check-Date")


@dataclass(frozen=True)
class BaseOptions:
    """What ``mlpack base bootstrap`` builds."""

    ref: str = BASE_REF
    suite: str = "bookworm"
    variant: str = "essential"
    # libgomp1: the OpenMP runtime LightGBM's wheel links against and does not bundle (~300 KB).
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates", "libstdc++6", "libgomp1",
                                 "usr-is-merged")
    # usrmerge (pulled in by init-system-helpers) brings ~45 MiB of perl that a
    # model server never runs; the tree is already merged, so it goes again.
    purge: tuple[str, ...] = ("usrmerge", "libfile-find-rule-perl", "libnumber-compare-perl",
                              "libtext-glob-perl", "perl", "libperl5.36", "perl-modules-5.36")
    # Essential (or needed only by what is) yet dead weight once the packages are configured, purged
    # last with dpkg told that it may: perl-base (9 MB) only ran maintainer scripts; util-linux,
    # login, PAM, bsdutils, hostname, ncurses-bin, sysvinit-utils and init-system-helpers are tools
    # for booting, logging in and managing disks and services; openssl is the command-line tool
    # (libssl3 stays); debconf needs the perl that is gone. With them go the libraries only they
    # link against (systemd, udev, gcrypt, mount, blkid, audit, capabilities), Kerberos + NIS
    # (only the deprecated ``nis`` module used them) and Berkeley DB (only ``dbm.ndbm``).
    # What stays: python3, dash, bash, coreutils, grep, sed, findutils, mawk, diffutils (dpkg
    # requires diff), tar, gzip, dpkg and its database (what scanners read), libdebconfclient
    # (update-passwd links it), glibc whole (its NSS and iconv loaders dlopen), every library the
    # stdlib's extensions and the venvs' wheels need (tests/integration/builder/test_slim_image.py
    # resolves every ELF's NEEDED libraries inside the image).
    purge_essential: tuple[str, ...] = (
        "perl-base", "util-linux-extra", "libpam-modules", "libpam-modules-bin", "libpam-runtime",
        "libpam0g", "login", "util-linux", "bsdutils", "hostname", "ncurses-bin", "sysvinit-utils",
        "init-system-helpers", "libsystemd0", "libudev1", "libgcrypt20", "libgpg-error0", "liblz4-1",
        "libmount1", "libblkid1", "libsmartcols1", "libaudit1", "libaudit-common", "libcap-ng0",
        "libcap2", "libnsl2", "libtirpc3", "libtirpc-common", "libgssapi-krb5-2", "libkrb5-3",
        "libk5crypto3", "libkrb5support0", "libkeyutils1", "libcom-err2", "openssl", "libgdbm6",
        "libgdbm-compat4", "libdb5.3", "debconf")
    mirrors: tuple[str, ...] = ()           # empty: the host's Debian apt sources
    source_date_epoch: int = DEFAULT_EPOCH
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    slim: bool = True                       # False: keep iconv modules and the stdlib's extras
    # What only a builder stage runs: the wheels `python3 -m venv` installs pip and setuptools
    # from (ensurepip), and dpkg with the diff it calls. They make the base's second layer, which
    # the runtime image (``runtime_ref``) does not have; its dpkg status does not list them.
    builder_only: tuple[str, ...] = ("python3-pip-whl", "python3-setuptools-whl", "python3.11-venv",
                                     "python3-venv", "dpkg", "diffutils")
    # the image's architecture (OCI name); another than the host's is extracted, not installed
    # (mlpack.oci.foreignbase), and joins the other platforms of ``ref`` in one image index
    arch: str = "amd64"


def recipe(options: BaseOptions | None = None) -> str:
    """A digest of what decides the base's content (suite, packages, purges, trims; not the mirror):
    stored as a label, so a store whose base was made by an older recipe bootstraps it again."""
    options = options or BaseOptions()
    spec = {"suite": options.suite, "variant": options.variant, "packages": options.packages,
            "purge": options.purge, "purge_essential": options.purge_essential, "slim": options.slim,
            "excludes": _EXCLUDES + (_SLIM_EXCLUDES if options.slim else ()),
            "remove": _SLIM_REMOVE if options.slim else (), "extra_args": options.extra_args,
            "epoch": options.source_date_epoch, "arch": options.arch, "builder_only": options.builder_only}
    return "sha256:" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def current(store: Store, options: BaseOptions | None = None) -> Image | None:
    """``options.ref`` in ``store`` when it was made by this recipe; None when it is missing or stale.
    (Its runtime image is made from it wherever one is missing: :func:`runtime_image`.)"""
    options = options or BaseOptions()
    try:
        image = store.resolve(options.ref)
    except ImageNotFound:
        return None
    return image if image.config.labels.get(RECIPE_LABEL) == recipe(options) else None


def host_apt_sources() -> list[str]:
    """The host's Debian apt source files (deb822 or one-line), for mmdebstrap's MIRROR arguments."""
    found = []
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.sources")),
                 *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        lines = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        if lines and "debian" in text:
            found.append(path)
    return found


def host_apt_options() -> list[str]:
    """Proxy and validity settings of the host's apt, passed on with --aptopt."""
    try:
        dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in dump.splitlines() if line.split(" ", 1)[0] in _APT_KEYS]


def bootstrap(settings: Settings, options: BaseOptions | None = None, *,
              log: Callable[[str], None] | None = None) -> Image:
    """Build the base image with mmdebstrap and store it as ``options.ref``; returns it."""
    options = options or BaseOptions()
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise StoreError("mmdebstrap is not installed", hint="apt-get install mmdebstrap", step="bootstrap")
    mirrors = list(options.mirrors) or host_apt_sources()
    if not mirrors:
        raise StoreError("no Debian apt sources found on this host",
                         hint="pass a mirror (e.g. http://deb.debian.org/debian)", step="bootstrap")
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="base-", dir=settings.cache_dir) as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        foreign = options.arch != host_platform()[1]
        cmd = [mmdebstrap, f"--variant={options.variant}", f"--include={','.join(options.packages)}",
               "--format=tar", "--quiet"]
        if foreign:
            cmd = [mmdebstrap, *foreign_args(options.arch, FOREIGN_PACKAGES, _SLIM_REMOVE if options.slim else ())]
        cmd += [f"--aptopt={o}" for o in host_apt_options()]
        cmd += [f"--dpkgopt={o}" for o in _EXCLUDES + (_SLIM_EXCLUDES if options.slim else ())]
        # host-specific files would make the layer differ between machines
        cmd += ['--customize-hook=: > "$1/etc/resolv.conf"; echo mlpack > "$1/etc/hostname"']
        if options.purge and not foreign:
            # dpkg only warns about packages that are not installed
            cmd += [f'--customize-hook=chroot "$1" dpkg --purge {" ".join(options.purge)}']
        if options.slim and not foreign:
            cmd += [f'--customize-hook=cd "$1" && rm -rf {" ".join(_SLIM_REMOVE)}']
        if options.purge_essential and not foreign:
            # Their maintainer scripts call debconf (perl, gone) and update-rc.d (purged with them):
            # dropped first, so the purge removes files and database entries and runs nothing.
            scripts = " ".join(f'"$1"/var/lib/dpkg/info/{p}{arch}.{kind}' for p in options.purge_essential
                               for arch in ("", ":*") for kind in ("prerm", "postrm"))
            cmd += [f"--customize-hook=rm -f {scripts}",
                    '--customize-hook=chroot "$1" dpkg --purge --force-remove-essential --force-depends '
                    + " ".join(options.purge_essential),
                    '--customize-hook=rm -rf "$1"/var/cache/debconf "$1"/usr/share/debconf']
        if options.slim and not foreign:  # dpkg's copy of the status before its last change
            cmd += ['--customize-hook=rm -f "$1"/var/lib/dpkg/status-old']
        cmd += list(options.extra_args)
        cmd += [options.suite, str(tar_path), *mirrors]
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(options.source_date_epoch))
        if log:
            included = next(a for a in cmd if a.startswith("--include=")).partition("=")[2]
            log(f"running mmdebstrap {options.suite} for {options.arch} ({included.replace(',', ', ')})")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StoreError(f"mmdebstrap failed with exit status {proc.returncode}:\n{proc.stderr[-3000:]}",
                             hint="check that the Debian mirror is reachable (apt-get update works)",
                             step="mmdebstrap", stderr=proc.stderr)
        if log:
            log(f"rootfs tar is {tar_path.stat().st_size / 1e6:.1f} MB after {time.monotonic() - started:.0f}s; importing")
        store = Store(settings.store_dir)
        digest = import_rootfs_tar(store, tar_path, options, foreign=foreign, workdir=Path(tmp))
        add_platform(store, options.ref, digest)  # the tag keeps its other platforms
        image = store.resolve(options.ref, platform=("linux", options.arch))
        make_runtime_image(store, image, runtime_ref(options.ref))
    if log:
        log(f"stored {options.ref} ({image.size / 1e6:.1f} MB compressed) and {runtime_ref(options.ref)} "
            f"in {time.monotonic() - started:.0f}s")
    return image


def _config(options: BaseOptions, foreign: bool, *, tools_layer: bool) -> dict[str, Any]:
    """The base's image config; ``tools_layer``: it has the builder-only layer on top."""
    created = _dt.datetime.fromtimestamp(options.source_date_epoch, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    variant = "extract --arch=" + options.arch if foreign else options.variant
    history = [{"created_by": f"mmdebstrap --variant={variant} {options.suite} (mlpack base bootstrap)",
                "created": created}]
    if tools_layer:
        history.append({"created_by": f"what only a builder stage runs: {' '.join(options.builder_only)} "
                                      "(mlpack base bootstrap)", "created": created})
    return {
        **platform_descriptor(("linux", options.arch)),
        "created": created,
        "config": {"Env": [PATH_ENV, "LANG=C.UTF-8"], "Cmd": ["python3"], "Labels": {
            "org.opencontainers.image.title": "mlpack python base",
            RECIPE_LABEL: recipe(options),
            "org.opencontainers.image.description": f"Debian {options.suite} {options.variant} + {' '.join(options.packages)}",
        }},
        "history": history,
    }


def import_rootfs_tar(store: Store, tar_path: Path, options: BaseOptions, *, foreign: bool = False,
                      workdir: Path | None = None) -> str:
    """Turn a root filesystem tar into the base (device nodes dropped, layers made reproducible):
    the runtime layer, then the layer of ``options.builder_only`` when the tree has those
    packages. Returns the base's manifest digest (untagged)."""
    layer_options = LayerOptions(source_date_epoch=options.source_date_epoch)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=workdir) as tmp:
        root, tools = Path(tmp) / "rootfs", Path(tmp) / "tools"
        apply_layer(root, tar_path, UnpackOptions(devices="skip"))
        for node in (root / "dev").glob("*") if (root / "dev").is_dir() else []:
            # /dev belongs to the runtime; mmdebstrap adds symlinks like /dev/fd there
            if node.is_symlink() or not node.is_dir():
                node.unlink()
            else:
                shutil.rmtree(node)
        tools.mkdir()
        moved = split_packages(root, tools, options.builder_only)
        layers = [write_dir(store, root, layer_options)]
        if moved:
            layers.append(write_dir(store, tools, layer_options))
    return store.put_image(_config(options, foreign, tools_layer=bool(moved)), layers)
