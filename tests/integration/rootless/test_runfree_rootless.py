"""An ordinary user where user namespaces are refused (a notebook pod's seccomp profile):
``mlpack build BUNDLE`` needs no namespace at all, gives the digest root gives, and the image
serves the model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

from mlpack.endpoint import predict_http, to_payload
from tests.integration.rootless.users import SRC, SYSTEM_PYTHON, VIEW, User

pytestmark = [pytest.mark.build, pytest.mark.slow]

TAG = "localhost/rl/runfree:1"
EPOCH = "1700000000"


def test_runfree_build_as_a_user_without_user_namespaces(ranged_user: User, sklearn_bundle, base_image,  # type: ignore[no-untyped-def]
                                                         run_settings, tmp_path: Path) -> None:
    from mlpack.oci.base import BASE_REF

    if os.uname().machine != "x86_64":
        pytest.skip("the seccomp filter of nouserns.py is written for x86_64")
    user = ranged_user
    env = dict(os.environ, MLPACK_HOME=str(run_settings.home))
    tar = user.home.parent / "base.tar"
    proc = subprocess.run([sys.executable, "-m", "mlpack", "save", "-o", str(tar), BASE_REF], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    user.give(tar)
    user.mlpack("load", "-i", str(tar), check=True)
    tar.unlink()
    bundle = user.home.parent / "bundle"
    shutil.copytree(sklearn_bundle.path, bundle)
    wheels = run_settings.cache_dir / "wheels"
    if wheels.is_dir():  # the root run's wheel cache, so the user needs no index either
        # (earlier tests may have filled the user's own cache already)
        shutil.copytree(wheels, user.home / "cache" / "wheels", dirs_exist_ok=True)
    user.give(user.home.parent)

    nouserns = str(VIEW / "src" / "tests" / "integration" / "builder" / "nouserns.py")
    denied = user.run(SYSTEM_PYTHON, nouserns, "unshare", "--user", "--map-root-user", "true")
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr, denied
    t0 = time.monotonic()
    built = user.run(SYSTEM_PYTHON, nouserns, SYSTEM_PYTHON, "-m", "mlpack", "build", "--no-cache", str(bundle),
                     "-t", TAG, timeout=900, SOURCE_DATE_EPOCH=EPOCH)
    seconds = time.monotonic() - t0
    assert built.returncode == 0, built.stderr[-4000:]
    assert "user namespaces are refused here" in built.stderr and "deps=context" in built.stderr, built.stderr
    digest = built.stdout.strip().splitlines()[-1]

    # root builds the same bundle the same way: the same image, owners included
    import mlpack
    from mlpack.settings import Settings

    root_settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "root-home")})
    tar = tmp_path / "base.tar"
    subprocess.run([sys.executable, "-m", "mlpack", "save", "-o", str(tar), BASE_REF], env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "mlpack", "load", "-i", str(tar)], check=True, capture_output=True,
                   env=dict(os.environ, MLPACK_HOME=str(root_settings.home)))
    if wheels.is_dir():
        shutil.copytree(wheels, root_settings.cache_dir / "wheels")
    # with the same Python as the user's (bytecode differs between 3.11 patch releases)
    site = sysconfig.get_paths()["purelib"]
    rooted = subprocess.run([SYSTEM_PYTHON, "-m", "mlpack", "build", "-q", "--deps", "context", str(bundle), "-t", TAG],
                            env=dict(os.environ, MLPACK_HOME=str(root_settings.home), PYTHONPATH=f"{SRC}:{site}",
                                     SOURCE_DATE_EPOCH=EPOCH), capture_output=True, text=True, timeout=900)
    assert rooted.returncode == 0, rooted.stderr[-3000:]
    assert rooted.stdout.strip().splitlines()[-1] == digest

    # the user runs it (namespaces allowed again, outside the filter) and it answers as the model did
    cid = user.mlpack("run", "-d", "--name", "runfree", "-p", "127.0.0.1:0:8080", TAG,
                      check=True).stdout.strip().splitlines()[-1]
    try:
        record = json.loads((user.home / "containers" / cid / "record.json").read_text())
        url = f"http://127.0.0.1:{record['ports'][0]['host_port']}"
        deadline = time.monotonic() + 120
        outputs = None
        while outputs is None:
            try:
                outputs = predict_http(url, to_payload(sklearn_bundle.sample()), timeout=5)
            except mlpack.MlpackError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        expected = sklearn_bundle.expected()
        np.testing.assert_array_equal(outputs["label"], expected["label"])
        np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-5)
    finally:
        user.mlpack("rm", "-f", "runfree")
    print(f"\n[rootless, no user namespaces] RUN-free build {seconds:.1f} s")
