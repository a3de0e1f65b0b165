"""Tree digests of unpacked layers: content, mode, owner and links count; mtimes do not."""

from __future__ import annotations

import os
from pathlib import Path

from mlpack.oci.layertree import check_layers, record_tree, remove_layer, tree_digest

DIFF_ID = "sha256:" + "ab" * 32


def _layer(layers_dir: Path) -> Path:
    root = layers_dir / "sha256" / ("ab" * 32)
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("etc/passwd", root / "link")
    return root


def test_changes_are_seen_and_mtimes_are_not(tmp_path: Path) -> None:
    root = _layer(tmp_path)
    first = tree_digest(root)
    os.utime(root / "etc" / "passwd", (1, 1))
    assert tree_digest(root) == first
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n".replace("sh", "zz"))  # same size
    assert tree_digest(root) != first
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    assert tree_digest(root) == first
    os.chmod(root / "etc" / "passwd", 0o600)
    assert tree_digest(root) != first


def test_check_and_remove(tmp_path: Path) -> None:
    root = _layer(tmp_path)
    assert [c.status for c in check_layers(tmp_path)] == ["unrecorded"]
    record_tree(tmp_path, DIFF_ID, root)
    assert [c.status for c in check_layers(tmp_path)] == ["ok"]
    (root / "planted").write_text("x")
    assert [(c.diff_id, c.status) for c in check_layers(tmp_path)] == [(DIFF_ID, "modified")]
    remove_layer(tmp_path, DIFF_ID)
    assert not root.exists() and check_layers(tmp_path) == []
