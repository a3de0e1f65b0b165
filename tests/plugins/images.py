"""Session fixtures for the images side of the suite.

``busybox_image``: a tiny base image (static busybox, /etc/passwd with an
``app`` user) made from the host's busybox-static, in the run store; enough
for RUN steps in builder tests without a registry or mmdebstrap.

``serving_image``: the rendered Dockerfile of the captured scikit-learn model
(``sklearn_bundle``) built ONCE per run by mlpack's builder into the run
store; every test that needs a real serving image shares it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mlpack.settings import Settings

BUSYBOX_REF = "localhost/mlpack-test/busybox:1"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "rm", "mkdir", "touch", "chmod", "id", "true", "false",
                   "test", "env", "printf", "sleep", "wget", "tar", "find", "stat", "cp", "mv", "ln",
                   "whoami", "grep", "sed", "head", "wc", "sha256sum", "dirname", "basename", "seq")


def make_busybox_image(store_dir: Path, ref: str = BUSYBOX_REF) -> str:
    """Store a busybox base image under ``ref``; returns its manifest digest (idempotent)."""
    from mlpack.oci.layer import Entry, LayerOptions, write_entries
    from mlpack.oci.layout import Store

    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("busybox-static is not installed; tests/run.sh installs it")
    store = Store(store_dir)
    store.init()
    epoch = 1_700_000_000
    entries = [
        Entry("bin", "dir", 0o755, mtime=epoch),
        Entry("bin/busybox", "file", 0o755, mtime=epoch, source=Path(os.path.realpath(busybox))),
        Entry("etc", "dir", 0o755, mtime=epoch),
        Entry("etc/passwd", "file", 0o644, mtime=epoch,
              data=b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"),
        Entry("etc/group", "file", 0o644, mtime=epoch, data=b"root:x:0:\napp:x:1000:\n"),
        Entry("root", "dir", 0o700, mtime=epoch),
        Entry("home", "dir", 0o755, mtime=epoch),
        Entry("home/app", "dir", 0o755, uid=1000, gid=1000, mtime=epoch),
        Entry("tmp", "dir", 0o1777, mtime=epoch),
        Entry("usr", "dir", 0o755, mtime=epoch),
        Entry("usr/bin", "dir", 0o755, mtime=epoch),
    ]
    entries += [Entry(f"bin/{name}", "symlink", 0o777, mtime=epoch, linkname="busybox") for name in BUSYBOX_APPLETS]
    layer = write_entries(store, entries, LayerOptions(source_date_epoch=epoch))
    config = {
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "busybox test base"}],
    }
    return store.put_image(config, [layer], ref=ref)


@pytest.fixture(scope="session")
def busybox_image(run_settings: Settings) -> str:
    """Reference of the busybox base image in the run store."""
    make_busybox_image(run_settings.store_dir)
    return BUSYBOX_REF


@pytest.fixture(scope="session")
def serving_image(request: pytest.FixtureRequest, run_settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    """The sklearn serving image built once per run by mlpack's builder (an oci Image)."""
    if os.geteuid() != 0:
        pytest.skip("building a serving image needs root (RUN steps run in a sandbox)")
    try:
        bundle = request.getfixturevalue("sklearn_bundle")
    except pytest.FixtureLookupError:
        pytest.skip("tests/plugins/models.py has no sklearn_bundle fixture yet")
    from mlpack.builder import build
    from mlpack.dockerfile import render

    try:
        base = request.getfixturevalue("python_base_image")
    except pytest.FixtureLookupError:
        base = None
    out = tmp_path_factory.mktemp("serving-context")
    shutil.rmtree(out)
    options = None
    if base is not None:
        from mlpack.dockerfile import RenderOptions

        options = RenderOptions(base_image=base if isinstance(base, str) else getattr(base, "ref", str(base)))
    context = render(bundle, options, out_dir=out)
    return build(context, tag="localhost/mlpack-test/sklearn-serving:1", settings=run_settings)
