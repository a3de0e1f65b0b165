"""Finding 3: ``RUN --mount=type=bind,...,rw`` wrote into the shared unpacked base layer and
into the user's source tree. Now every bind is an overlay over its source with a throw-away
upper directory: read-only unless ``rw``, ``rw`` writes vanish with the step, and
``.dockerignore``d files are absent from context binds."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mlpack.errors import BuildError
from mlpack.oci import layercache
from mlpack.settings import Settings
from tests.integration.security.buildattack import bctx, needs_root_and_runtime  # noqa: F401 - a fixture
from tests.unit.builder.helpers import Ctx

pytestmark = [pytest.mark.build, pytest.mark.runtime]


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its type and content hash: what must not change."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            elif full.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(full.read_bytes()).hexdigest() if full.is_file() else "special"
    return out


def test_rw_bind_from_an_image_leaves_its_unpacked_layer_alone(bctx: Ctx, busybox_httpd_image: str) -> None:
    base = bctx.store.resolve(busybox_httpd_image)
    layer_dirs = [layercache.layer_path(bctx.settings.layers_dir, d) for d in base.diff_ids]
    bctx.build(f"FROM {busybox_httpd_image}\nRUN true\n")  # the base is unpacked
    before = [_tree(d) for d in layer_dirs]
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        f"RUN --mount=type=bind,from={busybox_httpd_image},target=/b,rw "
        "sh -c 'echo planted > /b/planted && echo evil::0:0::/:/bin/sh >> /b/etc/passwd && rm -f /b/bin/ls "
        "&& cat /b/planted > /seen'\n"
        "RUN cat /etc/passwd > /passwd-now; ls /planted > /planted-now 2>&1 || true\n",
        no_cache=True)
    assert bctx.layer_file(image, "seen", -2) == b"planted\n"  # the step could write ...
    assert [_tree(d) for d in layer_dirs] == before              # ... but not into the shared layer
    assert b"evil" not in bctx.layer_file(image, "passwd-now")
    assert b"No such file" in bctx.layer_file(image, "planted-now")


def test_rw_bind_of_the_context_leaves_the_source_tree_alone(bctx: Ctx, busybox_httpd_image: str) -> None:
    bctx.write("src/app.py", "print('hi')\n")
    bctx.write(".git/hooks/README", "hooks\n")
    bctx.write("Dockerfile",
               f"FROM {busybox_httpd_image}\n"
               "RUN --mount=type=bind,target=/src,rw sh -c 'echo evil > /src/.git/hooks/pre-commit && "
               "echo more >> /src/src/app.py && rm /src/Dockerfile && cat /src/src/app.py > /seen'\n")
    before = _tree(bctx.root)
    image = bctx.build(no_cache=True)
    assert bctx.layer_file(image, "seen") == b"print('hi')\nmore\n"
    assert _tree(bctx.root) == before
    assert not (bctx.root / ".git" / "hooks" / "pre-commit").exists()


def test_binds_are_read_only_unless_rw(bctx: Ctx, busybox_httpd_image: str) -> None:
    bctx.write("data.txt", "x\n")
    with pytest.raises(BuildError, match="Read-only file system"):
        bctx.build(f"FROM {busybox_httpd_image}\nRUN --mount=type=bind,target=/src touch /src/new\n",
                   no_cache=True)
    with pytest.raises(BuildError, match="Read-only file system"):
        bctx.build(f"FROM {busybox_httpd_image}\n"
                   f"RUN --mount=type=bind,from={busybox_httpd_image},target=/b touch /b/new\n", no_cache=True)
    assert not (bctx.root / "new").exists()


def test_dockerignored_files_are_absent_from_context_binds(bctx: Ctx, busybox_httpd_image: str) -> None:
    bctx.write(".dockerignore", "secret.env\nprivate/\n**/*.key\n!keep.key\n")
    bctx.write("secret.env", "TOKEN=1\n")
    bctx.write("private/id_rsa", "key\n")
    bctx.write("a/b/c.key", "key\n")
    bctx.write("keep.key", "public\n")
    bctx.write("app.py", "ok\n")
    image = bctx.build(f"FROM {busybox_httpd_image}\n"
                       "RUN --mount=type=bind,target=/src sh -c 'cd /src && find . | sort > /listing'\n",
                       no_cache=True)
    listing = bctx.layer_file(image, "listing").decode().split()
    assert "./app.py" in listing and "./keep.key" in listing
    for hidden in ("./secret.env", "./private", "./private/id_rsa", "./a/b/c.key"):
        assert hidden not in listing, listing


def test_verify_finds_and_repairs_a_modified_unpacked_layer(bctx: Ctx, busybox_httpd_image: str) -> None:
    import subprocess
    import sys

    image = bctx.build(f"FROM {busybox_httpd_image}\nRUN echo {os.urandom(4).hex()} > /base-file\n",
                       tag="localhost/test/layer-under-attack:1", no_cache=True)
    layer = layercache.layer_path(bctx.settings.layers_dir, image.diff_ids[-1])
    assert layer.is_dir()
    (layer / "planted").write_text("in every container of this image")  # what the old rw bind did
    env = dict(os.environ, MLPACK_HOME=str(bctx.settings.home),
               PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    verify = subprocess.run([sys.executable, "-m", "mlpack", "system", "verify"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 1 and f"unpacked layer {image.diff_ids[-1]} was modified" in verify.stdout
    assert not layer.exists()  # repaired: removed, unpacked again from its verified blob when used
    again = bctx.build("FROM localhost/test/layer-under-attack:1\n"
                       "RUN ls /planted > /check 2>&1 || true\n", no_cache=True)
    assert b"No such file" in bctx.layer_file(again, "check")
    assert not (layer / "planted").exists()
    verify = subprocess.run([sys.executable, "-m", "mlpack", "system", "verify"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert "modified on disk" not in verify.stdout, verify.stdout
