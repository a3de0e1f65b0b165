"""The order of the store's durable steps, seen through the interpreter's audit events.

Every blob is fsynced before its rename (a name always matches its content);
the blob directory is fsynced once, after the last blob's rename and before
index.json is renamed into place, so the index never durably names a blob
whose rename a power loss could undo. ``os.rename`` (os.replace too) and
``open`` are audit events of CPython; fsync_dir opens the directory with
O_DIRECTORY to fsync it, so those opens are the directory syncs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store

_recording: list[list[tuple[str, str]]] = []


def _hook(event: str, args: tuple) -> None:  # type: ignore[type-arg]
    if not _recording:
        return
    if event == "os.rename":
        _recording[-1].append(("rename", os.fsdecode(args[1])))
    elif event == "open" and isinstance(args[0], (str, bytes)) and isinstance(args[2], int) \
            and args[2] & os.O_DIRECTORY:
        _recording[-1].append(("sync", os.fsdecode(args[0])))


sys.addaudithook(_hook)  # hooks cannot be removed: it records only inside _record()


def _record(fn) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    _recording.append([])
    try:
        fn()
    finally:
        events = _recording.pop()
    return events


def test_one_blob_directory_sync_between_the_last_blob_and_the_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.init()
    blobs = str(store.root / "blobs" / "sha256")
    index = str(store.root / "index.json")

    def write_image() -> None:
        layers = [write_entries(store, [Entry(f"data/{i}.txt", data=f"layer {i}".encode())]) for i in range(3)]
        store.put_image({"config": {"Cmd": ["true"]}}, layers, ref="localhost/durable/img:1")

    events = _record(write_image)
    blob_renames = [i for i, (kind, path) in enumerate(events) if kind == "rename" and os.path.dirname(path) == blobs]
    blob_syncs = [i for i, (kind, path) in enumerate(events) if kind == "sync" and path == blobs]
    index_renames = [i for i, (kind, path) in enumerate(events) if kind == "rename" and path == index]
    assert len(blob_renames) == 5, events  # 3 layers, config, manifest
    assert len(index_renames) == 1, events
    assert len(blob_syncs) == 1, f"one directory sync for the five blobs, not one each: {events}"
    assert blob_renames[-1] < blob_syncs[0] < index_renames[0], events
    image = store.resolve("localhost/durable/img:1")
    assert len(image.layers) == 3


def test_an_index_change_syncs_blobs_written_by_another_writer(tmp_path: Path) -> None:
    """Tagging an image whose blobs another process wrote still syncs their directory first: the
    sync is tied to the index change, not to blobs this process renamed."""
    store = Store(tmp_path / "store")
    layer = write_entries(store, [Entry("a.txt", data=b"a")])
    digest = store.put_image({"config": {}}, [layer], ref="localhost/durable/a:1")
    other = Store(tmp_path / "store")  # a fresh handle: nothing written through it
    blobs = str(store.root / "blobs" / "sha256")
    index = str(store.root / "index.json")
    events = _record(lambda: other.tag(digest, "localhost/durable/b:1"))
    order = [(kind, path) for kind, path in events if path in (blobs, index)]
    assert order == [("sync", blobs), ("rename", index)], events
