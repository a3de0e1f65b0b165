"""ImageConfig: a config blob parsed once, hostile field types refused with a StoreError."""

from __future__ import annotations

import pytest

from mlpack.errors import StoreError
from mlpack.oci.config import HealthcheckConfig, ImageConfig, complete_blob

D = "sha256:" + "a" * 64
BLOB = {
    "architecture": "arm64", "os": "linux", "created": "2024-01-01T00:00:00Z", "author": "me",
    "config": {
        "User": "10001:10002", "Env": ["PATH=/usr/bin", "MLPACK_PORT=9000", "EMPTY"], "Entrypoint": ["mlpack-serve"],
        "Cmd": None, "WorkingDir": "/app", "ExposedPorts": {"9000/tcp": {}, "53/udp": {}, "8080": {}, "x/tcp": {}},
        "Labels": {"a": "1"}, "StopSignal": "SIGINT", "OnBuild": ["RUN true"],
        "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 10**10, "Retries": 2},
    },
    "rootfs": {"type": "layers", "diff_ids": [D]},
    "history": [{"created_by": "base"}],
}


def test_every_field_parsed_once() -> None:
    cfg = ImageConfig.from_blob(BLOB)
    assert (cfg.user, cfg.working_dir, cfg.stop_signal) == ("10001:10002", "/app", "SIGINT")
    assert cfg.entrypoint == ("mlpack-serve",) and cfg.cmd is None
    assert cfg.env_map == {"PATH": "/usr/bin", "MLPACK_PORT": "9000", "EMPTY": ""}
    assert cfg.tcp_ports == (8080, 9000)  # udp and nonsense left out, "8080" is tcp
    assert cfg.user_ids == (10001, 10002)
    assert cfg.labels == {"a": "1"} and cfg.diff_ids == (D,) and cfg.history == ({"created_by": "base"},)
    assert cfg.platform == {"architecture": "arm64", "os": "linux"}
    assert (cfg.created, cfg.author) == ("2024-01-01T00:00:00Z", "me")
    assert cfg.healthcheck == HealthcheckConfig(("CMD-SHELL", "true"), interval_ns=10**10, retries=2)
    assert cfg.healthcheck.to_json() == BLOB["config"]["Healthcheck"]
    assert cfg.blob is BLOB


@pytest.mark.parametrize(("user", "ids"), [("", (0, None)), ("1000", (1000, None)), ("app", (None, None)),
                                           ("app:50", (None, 50))])
def test_user_ids(user: str, ids: tuple) -> None:
    assert ImageConfig(user=user).user_ids == ids


def test_the_config_object_is_a_copy_with_every_key() -> None:
    cfg = ImageConfig.from_blob(BLOB)
    inner = cfg.config_object
    assert inner["OnBuild"] == ["RUN true"]  # keys mlpack does not model survive a rebuild
    inner["Labels"]["a"] = "changed"
    assert BLOB["config"]["Labels"] == {"a": "1"}


def test_an_empty_or_scratch_config() -> None:
    assert ImageConfig.from_blob({}) == ImageConfig()
    assert ImageConfig.from_config(None).tcp_ports == ()
    assert HealthcheckConfig(("NONE",)).disabled and HealthcheckConfig(()).disabled


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        ([], "document"),
        ({"config": []}, "config"),
        ({"config": {"Env": "PATH=/bin"}}, "Env"),
        ({"config": {"Cmd": ["sh", 1]}}, "Cmd"),
        ({"config": {"User": 0}}, "User"),
        ({"config": {"ExposedPorts": ["8080/tcp"]}}, "ExposedPorts"),
        ({"config": {"Labels": "a=1"}}, "Labels"),
        ({"config": {"Healthcheck": {"Test": ["CMD", "x"], "Interval": -1}}}, "Interval"),
        ({"config": {"Healthcheck": {"Test": ["CMD", "x"], "Retries": True}}}, "Retries"),
        ({"rootfs": {"diff_ids": "sha256:x"}}, "diff_ids"),
        ({"history": ["x"]}, "history"),
        ({"architecture": 64}, "architecture"),
    ],
)
def test_hostile_types_are_store_errors(blob: object, words: str) -> None:
    with pytest.raises(StoreError, match=words) as info:
        ImageConfig.from_blob(blob)
    assert info.value.hint


def test_complete_blob_fills_rootfs_and_platform() -> None:
    out, parsed = complete_blob({"config": {"Cmd": ["sh"]}}, [D])
    assert out["rootfs"] == {"type": "layers", "diff_ids": [D]} and parsed.diff_ids == (D,)
    assert parsed.platform == {"architecture": "amd64", "os": "linux"}
    assert complete_blob(BLOB, [None])[1].diff_ids == (D,)  # a blob with rootfs keeps it
    with pytest.raises(StoreError, match="diff_id"):
        complete_blob({}, [None])
