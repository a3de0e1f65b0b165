"""Finding 2: COPY followed symlinked parent directories out of the context or a stage's root.
Now every path is resolved inside its root (openat2 RESOLVE_IN_ROOT, or a scoped walk): an
absolute symlink means the root's own path, and nothing of the host is read.
Finding 4: the post-RUN mount-point cleanup followed symlinks a step planted; now it never
leaves the step's upper directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpack.errors import BuildError
from mlpack.settings import Settings
from tests.integration.security.buildattack import bctx, needs_root_and_runtime  # noqa: F401 - a fixture
from tests.unit.builder.helpers import Ctx

pytestmark = [pytest.mark.build, pytest.mark.runtime]

HOST_SECRET = "host-only-secret-51d0\n"


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory with a secret, outside every context and image."""
    d = tmp_path / "host-secrets"
    d.mkdir()
    (d / "shadow").write_text(HOST_SECRET)
    return d


def _all_layer_bytes(ctx: Ctx, image) -> bytes:  # type: ignore[no-untyped-def]
    import tarfile

    out = b""
    for layer in image.layers:
        with tarfile.open(ctx.store.blob_path(layer["digest"]), "r:gz") as tar:
            for m in tar:
                fh = tar.extractfile(m) if m.isreg() else None
                out += fh.read() if fh else b""
    return out


def test_copy_through_a_context_symlink_to_etc_is_refused(bctx: Ctx, busybox_httpd_image: str) -> None:
    os.symlink("/etc", bctx.root / "etc")
    with pytest.raises(BuildError, match="symbolic links|not found") as err:
        bctx.build(f"FROM {busybox_httpd_image}\nCOPY etc/shadow /x\n", no_cache=True)
    assert "root:" not in str(err.value)
    with pytest.raises(BuildError):
        bctx.build(f"FROM {busybox_httpd_image}\nCOPY etc/ /x/\n", no_cache=True)


def test_an_absolute_context_symlink_means_the_contexts_own_path(bctx: Ctx, busybox_httpd_image: str,
                                                                host_dir: Path) -> None:
    os.symlink(str(host_dir), bctx.root / "secrets")         # secrets -> /tmp/.../host-secrets
    os.symlink("../../../../../../..", bctx.root / "up")     # up -> far above the context
    bctx.write(str(host_dir).lstrip("/") + "/shadow", "the context's own copy\n")
    image = bctx.build(f"FROM {busybox_httpd_image}\nCOPY secrets/shadow /x\nCOPY secrets/ /d/\n", no_cache=True)
    assert bctx.layer_file(image, "x", -2) == b"the context's own copy\n"
    assert HOST_SECRET.encode() not in _all_layer_bytes(bctx, image)
    rel_host = os.path.relpath(host_dir / "shadow", "/")
    with pytest.raises(BuildError, match="not found"):
        bctx.build(f"FROM {busybox_httpd_image}\nCOPY up/{rel_host}x /y\n", no_cache=True)
    # up/<host path> stays inside: it is the context's copy again, never the host file
    image = bctx.build(f"FROM {busybox_httpd_image}\nCOPY up/{rel_host} /y\n", no_cache=True)
    assert bctx.layer_file(image, "y") == b"the context's own copy\n"


def test_copy_from_a_stage_through_its_absolute_symlink(bctx: Ctx, busybox_httpd_image: str,
                                                        host_dir: Path) -> None:
    df = (f"FROM {busybox_httpd_image} AS evil\n"
          f"RUN ln -s {host_dir} /leak && ln -s / /root-link\n"
          f"FROM {busybox_httpd_image}\n")
    with pytest.raises(BuildError, match="not found"):
        bctx.build(df + "COPY --from=evil /leak/shadow /x\n", no_cache=True)
    with pytest.raises(BuildError, match="not found"):
        bctx.build(df + f"COPY --from=evil /root-link{host_dir}/shadow /x\n", no_cache=True)
    image = bctx.build(
        f"FROM {busybox_httpd_image} AS evil\n"
        f"RUN mkdir -p {host_dir} && echo in-stage > {host_dir}/shadow && ln -s {host_dir} /leak\n"
        f"FROM {busybox_httpd_image}\nCOPY --from=evil /leak/shadow /x\nCOPY --from=evil /leak/ /d/\n",
        no_cache=True)
    assert bctx.layer_file(image, "x", -2) == b"in-stage\n"
    assert HOST_SECRET.encode() not in _all_layer_bytes(bctx, image)
    assert (host_dir / "shadow").read_text() == HOST_SECRET


def test_bind_mount_source_through_a_symlink_stays_in_the_context(bctx: Ctx, busybox_httpd_image: str,
                                                                  host_dir: Path) -> None:
    os.symlink(str(host_dir), bctx.root / "secrets")
    bctx.write(str(host_dir).lstrip("/") + "/shadow", "the context's own copy\n")
    image = bctx.build(f"FROM {busybox_httpd_image}\n"
                       "RUN --mount=type=bind,source=secrets,target=/s cat /s/shadow > /x\n", no_cache=True)
    assert bctx.layer_file(image, "x") == b"the context's own copy\n"


def test_bind_mount_from_a_named_context_stays_in_that_context(bctx: Ctx, busybox_httpd_image: str,
                                                               host_dir: Path, tmp_path: Path) -> None:
    """RUN --mount=type=bind,from=NAME (a named build context): a symlink in it to a host directory,
    and a source climbing out with .., both read the named context's own files, never the host's;
    the bind is read-only and the host directory is untouched."""
    named = tmp_path / "named"
    (named / str(host_dir).lstrip("/")).mkdir(parents=True)
    (named / str(host_dir).lstrip("/") / "shadow").write_text("the named context's own copy\n")
    os.symlink(str(host_dir), named / "secrets")
    image = bctx.build(f"FROM {busybox_httpd_image}\n"
                       "RUN --mount=type=bind,from=extra,source=secrets,target=/s cat /s/shadow > /x\n"
                       "RUN --mount=type=bind,from=extra,source=../../..,target=/up ls /up > /y\n"
                       "RUN --mount=type=bind,from=extra,target=/n sh -c 'echo pwned > /n/w' || echo refused > /z\n",
                       no_cache=True, build_contexts={"extra": named})
    assert bctx.layer_file(image, "x", index=-3) == b"the named context's own copy\n"
    assert sorted(bctx.layer_file(image, "y", index=-2).decode().split()) == sorted(os.listdir(named))
    assert bctx.layer_file(image, "z") == b"refused\n" and not (named / "w").exists()
    assert (host_dir / "shadow").read_text() == HOST_SECRET and sorted(os.listdir(host_dir)) == ["shadow"]


def test_workdir_through_a_planted_symlink_creates_nothing_on_the_host(bctx: Ctx, busybox_httpd_image: str,
                                                                        host_dir: Path) -> None:
    image = bctx.build(f"FROM {busybox_httpd_image}\nRUN ln -s {host_dir} /wd\n"
                       "WORKDIR /wd/sub\nRUN touch made-here\n", no_cache=True)
    assert not (host_dir / "sub").exists()
    assert f"{str(host_dir).lstrip('/')}/sub/made-here" in bctx.layer_members(image)


def test_mountpoint_cleanup_never_deletes_host_files(bctx: Ctx, busybox_httpd_image: str, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "x" / "y").mkdir(parents=True)  # an empty host directory ...
    (victim / "x" / "f").write_text("")       # ... and an empty host file, where the mounts were
    secret = tmp_path / "s.txt"
    secret.write_text("s")
    bctx.build(f"FROM {busybox_httpd_image}\n"
               "RUN --mount=type=tmpfs,target=/m/x/y --mount=type=secret,id=s,target=/m/x/f "
               f"mv /m /m.old && ln -s {victim} /m\n",
               no_cache=True, secrets={"s": str(secret)})
    assert (victim / "x" / "y").is_dir() and (victim / "x" / "f").is_file()
