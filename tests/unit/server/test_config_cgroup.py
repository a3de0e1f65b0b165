"""ServerConfig from env and flags; CPU quota detection on fake cgroup v1/v2 trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpack.errors import ConfigError
from mlpack.server.__main__ import parser
from mlpack.server.cgroup import CpuBudget, cpu_quota, size_pools
from mlpack.server.config import ServerConfig


def test_defaults_match_the_image_contract() -> None:
    config = ServerConfig.from_env({})
    assert (config.host, config.port, config.bundle) == ("0.0.0.0", 8080, "/opt/mlpack/bundle")
    assert config.batching is True and config.workers is None


def test_env_variables_are_typed_and_overrides_win() -> None:
    env = {
        "MLPACK_PORT": "9000",
        "MLPACK_BATCHING": "off",
        "MLPACK_MAX_BATCH_WAIT_MS": "2.5",
        "MLPACK_WORKERS": "auto",
        "MLPACK_THREADS": "3",
        "MLPACK_ACCESS_LOG": "false",
    }
    config = ServerConfig.from_env(env, port=9100)
    assert config.port == 9100
    assert config.batching is False and config.access_log is False
    assert config.max_batch_wait_ms == 2.5
    assert config.workers is None and config.threads == 3
    assert ServerConfig.from_env(config.to_env()) == config


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MLPACK_PORT": "http"}, "MLPACK_PORT"),
        ({"MLPACK_BATCHING": "maybe"}, "boolean"),
        ({"MLPACK_PORT": "70000"}, "port"),
        ({"MLPACK_MAX_BATCH_SIZE": "0"}, "max_batch_size"),
        ({"MLPACK_LOG_LEVEL": "loud"}, "log_level"),
    ],
)
def test_bad_values_say_which_setting(env: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        ServerConfig.from_env(env)
    assert info.value.hint


def test_cli_flags_map_onto_the_config() -> None:
    args = parser().parse_args(["--port", "9001", "--no-batching", "--max-batch-size", "8", "--bundle", "/b"])
    config = ServerConfig.from_env({"MLPACK_PORT": "1234"}, **vars(args))
    assert (config.port, config.batching, config.max_batch_size, config.bundle) == (9001, False, 8, "/b")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2_quota_of_a_container_root(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "cpu memory pids")
    _write(root / "cpu.max", "150000 100000\n")
    proc = tmp_path / "cgroup"
    _write(proc, "0::/\n")
    assert cpu_quota(root, proc) == 1.5


def test_v2_tightest_ancestor_wins_and_max_is_unlimited(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cgroup.controllers", "cpu")
    _write(root / "kubepods" / "cpu.max", "50000 100000")
    _write(root / "kubepods" / "pod1" / "cpu.max", "max 100000")
    proc = tmp_path / "cgroup"
    _write(proc, "0::/kubepods/pod1\n")
    assert cpu_quota(root, proc) == 0.5
    _write(root / "kubepods" / "cpu.max", "max 100000")
    assert cpu_quota(root, proc) is None


def test_v1_quota_with_host_path_not_visible_in_the_container(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "200000")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    proc = tmp_path / "cgroup"
    # The host path is not mounted inside the container: the mount root is the container's cgroup.
    _write(proc, "12:cpu,cpuacct:/mlpack/abc123\n11:memory:/mlpack/abc123\n0::/\n")
    assert cpu_quota(root, proc) == 2.0


def test_v1_unlimited_and_nested(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000")
    proc = tmp_path / "cgroup"
    _write(proc, "3:cpu:/a\n")
    assert cpu_quota(root, proc) is None
    _write(root / "cpu" / "a" / "cpu.cfs_quota_us", "25000")
    _write(root / "cpu" / "a" / "cpu.cfs_period_us", "100000")
    assert cpu_quota(root, proc) == 0.25


def test_missing_cgroupfs_means_unlimited(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "none", tmp_path / "none-either") is None


def test_this_host_reads_without_error() -> None:
    # Whatever this machine is (hybrid here), detection must not raise.
    quota = cpu_quota()
    assert quota is None or quota > 0


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [(0.5, (1, 1)), (1.5, (1, 1)), (2, (1, 2)), (4, (1, 4)), (8, (2, 4)), (16, (4, 4)), (128, (16, 8))],
)
def test_pool_sizing_fits_the_quota(cpus: float, expected: tuple[int, int]) -> None:
    workers, threads = size_pools(cpus)
    assert (workers, threads) == expected
    assert workers * threads <= max(1, int(cpus))


def test_explicit_sizes_win_and_budget_takes_the_smaller() -> None:
    assert size_pools(8, workers=1) == (1, 8)
    assert size_pools(8, threads=1) == (2, 1)
    assert CpuBudget(quota=1.5, affinity=8).cpus == 1.5
    assert CpuBudget(quota=None, affinity=2).cpus == 2.0
    assert CpuBudget(quota=6, affinity=2).cpus == 2


def test_mlpack_serve_rejects_bad_settings_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    from mlpack.server.__main__ import main

    assert main(["--port", "0", "--bundle", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "port must be 1-65535" in err and "hint" in err
