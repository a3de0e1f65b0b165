"""The pieces of mlpack.serve that need no container: options, payloads, log summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlpack.errors import ConfigError, ServeError
from mlpack.service import ServeOptions, serve, summarize_log, to_payload


def test_options_map_onto_limits_and_tag() -> None:
    o = ServeOptions(name="iris", cpus=0.5, memory="256Mi", pids=64)
    assert o.limits().memory == 256 * 1024**2 and o.limits().cpu_quota == (50_000, 100_000)
    assert o.image_tag == "mlpack/iris:latest"
    assert ServeOptions(name="x", tag="localhost/x:2").image_tag == "localhost/x:2"


def test_serve_rejects_unknown_options_and_bad_limits_before_any_work(tmp_path) -> None:
    with pytest.raises(ServeError, match="unknown serve option") as info:
        serve(object(), [[1.0]], cpu=2)  # a typo of cpus
    assert "cpus" in info.value.hint and info.value.stage == "config"
    from mlpack.settings import Settings

    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path)})
    with pytest.raises(ConfigError):
        serve(object(), [[1.0]], memory="lots", settings=settings)
    assert not (tmp_path / "serve").exists()


def test_payloads_are_rows_or_named_inputs() -> None:
    assert to_payload(np.array([[1.0, 2.0]], dtype=np.float32)) == {"inputs": [[1.0, 2.0]]}
    named = to_payload({"a": np.array([[1]]), "b": [[2.5]]})
    assert named == {"inputs": {"a": [[1]], "b": [[2.5]]}}
    json.dumps(named)


def test_log_summary_keeps_errors_and_drops_access_lines() -> None:
    log = "\n".join([
        json.dumps({"level": "info", "logger": "mlpack.server", "msg": "starting"}),
        json.dumps({"level": "info", "logger": "mlpack.access", "msg": "request", "status": 503}),
        "\x1b[0;93mplain warning line\x1b[m",
        json.dumps({"level": "error", "logger": "mlpack.server", "msg": "model failed to load",
                    "exc": "Traceback (most recent call last):\n  File x\nModuleNotFoundError: No module named 'sklearn'\n"
                           "  hint: fix hooks.py"}),
    ])
    lines = summarize_log(log)
    assert lines[0] == "info: starting"
    assert lines[1] == "plain warning line"
    assert lines[2].startswith("error: model failed to load | ModuleNotFoundError: No module named 'sklearn'")
    assert "hint: fix hooks.py" in lines[2]
    assert not any("request" in line for line in lines)


def test_k8s_export_without_push_is_refused_before_any_work(tmp_path) -> None:
    from mlpack.settings import Settings

    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path / "home")})
    with pytest.raises(ServeError) as info:
        serve(object(), np.zeros((2, 4)), k8s=tmp_path / "k8s", settings=settings)
    assert "--push" in str(info.value) and info.value.stage == "config"
    assert not (tmp_path / "home").exists() and not (tmp_path / "k8s").exists()


def test_a_package_the_index_does_not_have_is_named() -> None:
    from mlpack.errors import BuildError
    from mlpack.service import _explain_build

    pip = BuildError("Dockerfile:40: RUN failed with exit code 1: RUN ...",
                     output="ERROR: Could not find a version that satisfies the requirement mylocalpkg==0.1 "
                            "(from versions: none)\nERROR: No matching distribution found for mylocalpkg==0.1\n")
    explained = _explain_build(pip)
    assert explained.message.startswith("the image cannot install mylocalpkg==0.1:")
    assert explained.package == "mylocalpkg==0.1" and "pip install -e" in explained.hint
    uv = BuildError("RUN failed", output="  × No solution found when resolving dependencies:\n"
                                         "  ╰─▶ Because there is no version of six==99.0 and you require six==99.0")
    assert _explain_build(uv).package == "six==99.0"
    other = BuildError("RUN failed", output="gcc: error")
    assert _explain_build(other) is other


def test_the_hint_fits_how_the_container_failed() -> None:
    from mlpack.endpoint import failure_hint, startup_error

    assert "raise memory=" in failure_hint("", oom=True)
    assert "hooks.py" in failure_hint('error: model failed to load | File "/opt/mlpack/bundle/hooks.py", line 3')
    assert "module 'numpy.f2py' is not in the image" in failure_hint("ModuleNotFoundError: No module named 'numpy.f2py'")
    assert "system library" in failure_hint("ImportError: libgomp.so.1: cannot open shared object file")
    assert "port is taken" in failure_hint("OSError: [Errno 98] Address already in use")
    assert "ready_timeout" in failure_hint("", timed_out=True)

    class Exited:
        name = "svc"

        def logs(self) -> str:
            return '{"level": "error", "msg": "model failed to load", "exc": "Traceback\\nValueError: bad"}\n'

    err = startup_error(Exited(), "the container exited with status 1 before it was ready", exit_code=1)
    assert str(err).splitlines()[0].endswith("the last lines of its log:")
    assert err.message.endswith("error: model failed to load | Traceback | ValueError: bad")
    assert "mlpack logs svc" in err.hint and err.exit_code == 1
