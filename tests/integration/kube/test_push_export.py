"""End to end: push an image from the store to the local registry on 127.0.0.1
and export manifests whose image digest resolves in that registry."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpack.cli import main
from mlpack.settings import Settings

from tests.unit.kube.checks import validate_strict

_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _registry_host(registry: Any) -> str:
    """host:port of whatever the local_registry fixture yields."""
    for attr in ("host", "address", "netloc", "url", "endpoint"):
        value = getattr(registry, attr, None)
        if isinstance(value, str) and value:
            registry = value
            break
    else:
        if isinstance(registry, tuple):
            registry = f"{registry[0]}:{registry[1]}"
        port = getattr(registry, "port", None)
        if not isinstance(registry, str) and port:
            registry = f"127.0.0.1:{port}"
    text = str(registry)
    return text.split("://", 1)[-1].rstrip("/")


@pytest.fixture
def registry_host(request: pytest.FixtureRequest) -> str:
    try:
        registry = request.getfixturevalue("local_registry")
    except pytest.FixtureLookupError:
        pytest.skip("the local_registry fixture (tests/plugins/oci.py) does not exist yet")
    try:
        import mlpack.oci.registry  # noqa: F401
    except ImportError:
        pytest.skip("mlpack.oci.registry (the registry client) is not there yet")
    host = _registry_host(registry)
    assert host.startswith("127.0.0.1:") or host.startswith("localhost:"), host
    return host


@pytest.fixture
def store_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A private home whose store holds one small image, tagged like a local build."""
    from mlpack.oci.layer import write_dir
    from mlpack.oci.layout import Store

    home = tmp_path / "home"
    env = {"MLPACK_HOME": str(home)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env(env)
    store = Store(settings.store_dir)
    store.init()
    root = tmp_path / "rootfs"
    (root / "opt" / "mlpack").mkdir(parents=True)
    (root / "opt" / "mlpack" / "model.txt").write_text("a model, small enough for a push test\n")
    layer = write_dir(store, root)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": "10001:10001",
            "ExposedPorts": {"8080/tcp": {}},
            "Env": ["MLPACK_GRACEFUL_TIMEOUT_S=15"],
            "Entrypoint": ["mlpack-serve"],
            "Labels": {"org.opencontainers.image.version": "0.0.1"},
        },
    }
    store.put_image(config, [layer], ref="localhost/kube-e2e/tiny:1")
    return settings


def _head_manifest(host: str, repository: str, digest: str) -> tuple[int, str | None]:
    request = urllib.request.Request(
        f"http://{host}/v2/{repository}/manifests/{digest}", method="HEAD", headers={"Accept": _MANIFEST_TYPES}
    )
    # The tests' registry is on 127.0.0.1: never go through an HTTP proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return response.status, response.headers.get("Docker-Content-Digest")


@pytest.mark.registry
def test_push_then_export_pins_a_digest_the_registry_serves(
    store_settings: Settings, registry_host: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    from mlpack.oci.layout import Store

    monkeypatch.setenv("MLPACK_INSECURE_REGISTRIES", registry_host)
    local = Store(store_settings.store_dir).resolve("localhost/kube-e2e/tiny:1")
    target = f"{registry_host}/kube-e2e/tiny:1"
    out = tmp_path / "k8s"
    code = main([
        "export", "k8s", "localhost/kube-e2e/tiny:1", "-o", str(out), "--push", target,
        "--cpus", "1", "--memory", "512Mi", "--replicas", "2", "--max-replicas", "4",
    ])
    assert code == 0, capsys.readouterr().err
    dep = yaml.safe_load((out / "deployment.yaml").read_text())
    validate_strict(dep)
    pod = dep["spec"]["template"]["spec"]
    image = pod["containers"][0]["image"]
    repository, digest = image.split("@", 1)
    assert repository == f"{registry_host}/kube-e2e/tiny"
    # Pushing keeps the exact manifest bytes, so the digest is the store's.
    assert digest == local.digest
    status, served = _head_manifest(registry_host, "kube-e2e/tiny", digest)
    assert status == 200 and served == digest
    # What the store knew about the image reached the pod spec.
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["terminationGracePeriodSeconds"] == 20
    assert dep["metadata"]["labels"]["app.kubernetes.io/version"] == "0.0.1"

    skopeo = shutil.which("skopeo")
    if skopeo:  # a second, independent client agrees
        proc = subprocess.run(
            [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
            capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": "/usr/bin:/bin", "NO_PROXY": "*"},
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["config"]["digest"] == local.manifest["config"]["digest"]


@pytest.mark.registry
def test_nothing_is_pushed_when_the_export_would_fail(
    store_settings: Settings, registry_host: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MLPACK_INSECURE_REGISTRIES", registry_host)
    code = main([
        "export", "k8s", "localhost/kube-e2e/tiny:1", "-o", str(tmp_path / "k8s"),
        "--push", f"{registry_host}/kube-e2e/never:1", "--name", "Not_A_Label",
        "--cpus", "1", "--memory", "512Mi",
    ])
    assert code == 1 and "DNS-1123" in capsys.readouterr().err
    with pytest.raises(urllib.error.HTTPError) as info:
        _head_manifest(registry_host, "kube-e2e/never", "1")
    assert info.value.code == 404
    assert not (tmp_path / "k8s").exists()


def test_export_of_a_store_image_uses_its_digest(store_settings: Settings, tmp_path: Path) -> None:
    """The front door finds the image in the store: digest, user, port and grace."""
    import mlpack
    from mlpack.oci.layout import Store

    local = Store(store_settings.store_dir).resolve("localhost/kube-e2e/tiny:1")
    result = mlpack.export_k8s(
        "localhost/kube-e2e/tiny:1",
        mlpack.Limits(cpus=0.5, memory="256Mi", gpus=1),
        tmp_path / "k8s",
        {"registry": "registry.example.com/ml/tiny", "kserve": True},
        settings=store_settings,
    )
    assert result.image == f"registry.example.com/ml/tiny@{local.digest}"
    predictor = result.objects[0]["spec"]["predictor"]
    assert predictor["securityContext"]["runAsUser"] == 10001
    assert predictor["terminationGracePeriodSeconds"] == 20
    assert predictor["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_store_image_without_registry_is_refused(store_settings: Settings, tmp_path: Path) -> None:
    import mlpack

    with pytest.raises(mlpack.ExportError) as info:
        mlpack.export_k8s(
            "localhost/kube-e2e/tiny:1", mlpack.Limits(cpus=1, memory="1Gi"), tmp_path / "k8s",
            settings=store_settings,
        )
    assert "--push" in (info.value.hint or "")


def test_unknown_image_without_digest_is_refused(store_settings: Settings, tmp_path: Path) -> None:
    import mlpack

    with pytest.raises(mlpack.ExportError) as info:
        mlpack.export_k8s(
            "registry.example.com/ml/other:2", mlpack.Limits(cpus=1, memory="1Gi"), tmp_path / "k8s",
            settings=store_settings,
        )
    assert "no digest" in str(info.value)
