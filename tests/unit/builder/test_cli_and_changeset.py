"""`mlpack build` front door, and the upperdir -> changeset conversion rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlpack.builder.changeset import from_upperdir
from mlpack.cli import main


def test_cli_build_prints_digest_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hi\n")
    (ctx / "Dockerfile").write_text("ARG WHERE=/srv\nFROM scratch\nARG WHERE\nCOPY hello.txt $WHERE/\n")
    monkeypatch.setenv("MLPACK_HOME", str(tmp_path / "home"))
    rc = main(["build", "-t", "localhost/cli/test:1", "--build-arg", "WHERE=/opt", str(ctx)])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.strip().startswith("sha256:") and len(out.strip()) == 71
    assert "COPY hello.txt $WHERE/" in err and "1 layers" in err
    from mlpack.oci.layout import Store

    image = Store(tmp_path / "home" / "store").resolve("localhost/cli/test:1")
    assert image.digest == out.strip()


def test_cli_build_error_is_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nFROBNICATE x\n")
    monkeypatch.setenv("MLPACK_HOME", str(tmp_path / "home"))
    rc = main(["build", "-q", str(ctx)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Dockerfile:2: unknown instruction 'FROBNICATE'" in err and "Traceback" not in err
    rc = main(["build", "-q", "--secret", "id=x", str(ctx)])
    assert rc == 1 and "needs id=NAME,src=FILE" in capsys.readouterr().err


def _file(path: Path, text: str, mtime: int = 1_600_000_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_changeset_filters_copy_up_noise_and_keeps_real_changes(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _file(lower / "etc" / "same.conf", "x")
    _file(lower / "etc" / "changed.conf", "old")
    _file(lower / "etc" / "touched.conf", "x")
    _file(upper / "etc" / "same.conf", "x")          # copied up, nothing changed
    _file(upper / "etc" / "changed.conf", "new")     # same size class, new bytes
    _file(upper / "etc" / "touched.conf", "x", mtime=1_700_000_000)  # only mtime changed: a change
    _file(upper / "new" / "file.txt", "n")
    os.symlink("file.txt", upper / "new" / "link")
    for d in (lower / "etc", upper / "etc"):
        os.utime(d, (1_600_000_000, 1_600_000_000))
    entries = {e.path: e for e in from_upperdir(upper, [lower])}
    assert "etc/same.conf" not in entries
    assert entries["etc/changed.conf"].type == "file"
    assert "etc/touched.conf" in entries
    assert entries["new"].type == "dir" and entries["new/link"].linkname == "file.txt"
    assert "etc" in entries  # a parent of changes is listed explicitly


def test_changeset_whiteouts_need_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of a whiteout (char 0/0) needs root")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _file(lower / "a" / "gone.txt", "x")
    (upper / "a").mkdir(parents=True)
    os.mknod(upper / "a" / "gone.txt", 0o600 | 0o020000, os.makedev(0, 0))
    (upper / "b").mkdir()
    os.setxattr(upper / "b", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "a", "trusted.overlay.origin", b"\x00junk")
    entries = from_upperdir(upper, [lower])
    kinds = {(e.path, e.type) for e in entries}
    assert ("a/gone.txt", "whiteout") in kinds and ("b", "opaque") in kinds
    assert all(not any(k.startswith("trusted.overlay") for k in e.xattrs) for e in entries)
