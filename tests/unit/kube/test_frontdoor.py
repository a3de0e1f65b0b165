"""The front doors: ImageInfo from references and image configs, and the CLI."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mlpack.cli import main
from mlpack.pipeline.export import image_info, image_info_from_config, resolve_image
from mlpack.errors import ExportError
from mlpack.kube import ImageInfo
from mlpack.kube.naming import parse_reference
from mlpack.oci.config import ImageConfig
from mlpack.oci.image import Image
from mlpack.settings import Settings

from tests.unit.kube.checks import validate_strict

DIGEST = "sha256:" + "5e" * 32
CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "10001:10002",
        "ExposedPorts": {"9000/tcp": {}, "8080/tcp": {}},
        "Env": ["PATH=/usr/bin", "MLPACK_GRACEFUL_TIMEOUT_S=12.5"],
        "Labels": {"org.opencontainers.image.version": "2.0.1"},
    },
    "rootfs": {"type": "layers", "diff_ids": []},
}


def test_image_info_from_config() -> None:
    info = image_info_from_config("reg.example/team/iris:2", DIGEST, ImageConfig.from_blob(CONFIG))
    assert (info.user_uid, info.user_gid, info.port) == (10001, 10002, 8080)
    assert info.stop_grace_seconds == 12
    assert info.labels == {"org.opencontainers.image.version": "2.0.1"}
    assert info.digest == DIGEST


@pytest.mark.parametrize(
    ("user", "uid", "gid"), [("", 0, None), ("1000", 1000, None), ("app", None, None), ("app:50", None, 50)]
)
def test_users(user: str, uid: int | None, gid: int | None) -> None:
    info = image_info_from_config("r", None, ImageConfig.from_config({"User": user}))
    assert (info.user_uid, info.user_gid) == (uid, gid)


def test_port_from_env_wins_and_default_is_8080() -> None:
    assert image_info_from_config("r", None, ImageConfig.from_config({"Env": ["MLPACK_PORT=9090"]})).port == 9090
    assert image_info_from_config("r", None, ImageConfig()).port == 8080
    assert image_info_from_config("r", None, ImageConfig.from_config({"ExposedPorts": {"7000/tcp": {}}})).port == 7000


def test_image_info_from_strings_and_store_images() -> None:
    assert image_info(f"reg.example/a@{DIGEST}").digest == DIGEST
    assert image_info("reg.example/a:1").digest is None
    stored = Image(DIGEST, {"config": {"digest": DIGEST}}, ImageConfig.from_blob(CONFIG), [], [],
                   ref="localhost/mlpack/iris:latest")
    info = image_info(stored)
    assert (info.reference.familiar(), info.digest, info.user_uid) == ("localhost/mlpack/iris:latest", DIGEST, 10001)
    pushed = image_info(stored, reference="127.0.0.1:5000/iris:1", digest="sha256:" + "7" * 64)
    assert (pushed.reference.familiar(), pushed.digest, pushed.user_uid) == ("127.0.0.1:5000/iris:1", "sha256:" + "7" * 64, 10001)
    assert ImageInfo("reg.example/a:1").reference == parse_reference("reg.example/a:1")  # parsed once, on construction
    with pytest.raises(ExportError, match="invalid image reference"):
        ImageInfo("Bad Ref")
    same = ImageInfo("x")
    assert image_info(same) is same
    with pytest.raises(ExportError):
        image_info(42)  # type: ignore[arg-type]
    with pytest.raises(ExportError):  # something that only looks like an image is not one
        image_info(SimpleNamespace(ref="a", digest=DIGEST, config=CONFIG))  # type: ignore[arg-type]


def test_push_needs_a_store_image(settings: Settings) -> None:
    with pytest.raises(ExportError) as info:
        resolve_image("reg.example/a:1", settings=settings, push="127.0.0.1:5000/a:1")
    assert "store" in str(info.value)


def test_cli_export(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MLPACK_HOME", str(settings.home))
    out = tmp_path / "k8s"
    code = main([
        "export", "k8s", f"reg.example/team/iris@{DIGEST}", "-o", str(out),
        "--cpus", "2", "--memory", "2Gi", "--gpus", "1", "--pids-limit", "200",
        "--namespace", "ml", "--min-replicas", "2", "--max-replicas", "6", "--target-cpu", "65",
        "--user", "1000", "--start-seconds", "50",
    ])
    assert code == 0, capsys.readouterr().err
    dep = yaml.safe_load((out / "deployment.yaml").read_text())
    validate_strict(dep)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"reg.example/team/iris@{DIGEST}"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"}
    probe = container["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 150
    hpa = yaml.safe_load((out / "hpa.yaml").read_text())
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert "kubectl apply -k" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--gpus", "0.5"], "nvidia.com/gpu is an integer"),
        (["--gpus", "all"], "all"),
        (["--name", "Bad_Name"], "DNS-1123"),
    ],
)
def test_cli_errors_are_one_message(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys, extra: list[str], message: str
) -> None:
    monkeypatch.setenv("MLPACK_HOME", str(settings.home))
    code = main(["export", "k8s", f"reg.example/a@{DIGEST}", "-o", str(tmp_path / "o"),
                 "--cpus", "1", "--memory", "1Gi", "--user", "1000", *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert message in err and "hint:" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_unknown_tag_is_refused(tmp_path: Path, settings: Settings, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MLPACK_HOME", str(settings.home))
    args = ["export", "k8s", "reg.example/a:1", "-o", str(tmp_path / "o"), "--cpus", "1", "--memory", "1Gi",
            "--user", "1000"]
    assert main(args) == 1
    assert "no digest" in capsys.readouterr().err
    assert main([*args, "--allow-tag"]) == 0
