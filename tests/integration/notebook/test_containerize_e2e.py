"""%%containerize end to end through a real IPython shell: hooks run in the container,
a failing stage says which and why, and the cold and warm timings are measured."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mlpack.ipython.display import StageFailure

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]

SPECIES = ["setosa", "versicolor", "virginica"]
HOOKS = '''import numpy as np

SPECIES = np.array(["setosa", "versicolor", "virginica"])

def preprocess(inputs):
    # the features in reverse order: only a container that runs this agrees with the kernel
    return {k: np.ascontiguousarray(v[:, ::-1]) for k, v in inputs.items()}

def postprocess(outputs):
    outputs["species"] = SPECIES[outputs["label"]]
    return outputs
'''


def _post(url: str, rows: np.ndarray) -> dict:
    req = urllib.request.Request(f"{url}/predict", data=json.dumps({"inputs": rows.tolist()}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        return json.loads(resp.read())["outputs"]


def _iris_model(c: float):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    return LogisticRegression(C=c, max_iter=500).fit(x, y), x


def test_cell_hooks_run_in_the_container_cold_and_warm(e2e_shell, e2e_settings, capsys) -> None:
    clf, x = _iris_model(1.0)
    e2e_shell.user_ns.update(clf=clf, X_sample=x[::5])
    cell = "%%containerize clf --sample X_sample --name nb-e2e --cpus 1 --memory 512Mi --pids-limit 128\n" + HOOKS

    started = time.monotonic()
    result = e2e_shell.run_cell(cell)
    assert result.error_in_exec is None, capsys.readouterr().out
    svc = e2e_shell.user_ns["clf_service"]
    cold = svc.first_prediction_at - started
    assert svc.parity.passed and "species exact" in svc.parity.summary()

    # Ask the container directly (no Service, no kernel code): both hooks ran inside it.
    rows = x[[0, 50, 100, 120]]
    answer = _post(svc.url, rows)
    reversed_labels = clf.predict(rows[:, ::-1]).tolist()
    assert answer["label"] == reversed_labels
    assert answer["label"] != clf.predict(rows).tolist()  # so preprocess really changed what the model saw
    assert answer["species"] == [SPECIES[i] for i in reversed_labels]
    first_url = svc.url

    # Warm: a changed model, the same cell; every layer but the model's comes from the cache.
    clf2, _ = _iris_model(0.05)
    e2e_shell.user_ns["clf"] = clf2
    capsys.readouterr()
    started = time.monotonic()
    result = e2e_shell.run_cell(cell)
    out = capsys.readouterr().out
    assert result.error_in_exec is None, out
    svc2 = e2e_shell.user_ns["clf_service"]
    warm = svc2.first_prediction_at - started
    assert svc2.parity.passed
    assert "CACHED" in out and "[build] done" in out
    assert _post(svc2.url, rows)["label"] == clf2.predict(rows[:, ::-1]).tolist()
    if svc2.url != first_url:  # the first container was replaced, not left running
        with pytest.raises(OSError):
            _post(first_url, rows)

    figures = {"cold_cell_to_first_prediction_s": round(cold, 3), "warm_cell_to_first_prediction_s": round(warm, 3),
               "warm_stages_s": {k: round(v, 3) for k, v in svc2.timings.items()}}
    Path(e2e_settings.home, "notebook-timings.json").write_text(json.dumps(figures, indent=2))
    print(f"\n%%containerize timings: {figures}")
    assert warm < 30, figures  # generous on 2 shared cores; the report quotes the real figure


def test_a_failing_stage_says_which_and_why(e2e_shell, e2e_settings) -> None:
    clf, x = _iris_model(1.0)
    e2e_shell.user_ns.update(clf=clf, X_sample=x[::10])
    # The hooks import fine in the kernel and fail when the server imports them.
    cell = ("%%containerize clf --sample X_sample --name nb-fail --timeout 40\n"
            "import os\nif os.environ.get('MLPACK_BUNDLE'):\n    raise ImportError('only in the image')\n\n"
            "def postprocess(outputs):\n    return outputs\n")
    result = e2e_shell.run_cell(cell)
    err = result.error_in_exec
    assert isinstance(err, StageFailure), err
    text = "\n".join(err.lines())
    assert err.stage in ("ready", "run"), text
    assert "only in the image" in text  # the container's own log lines, in the message itself
    assert "Traceback (most recent call last)" not in "\n".join(err._render_traceback_()[:1])
    from mlpack.runtime import get_container

    # The failed container is stopped but kept, so its whole log stays readable.
    kept = get_container(e2e_settings, "nb-fail")
    try:
        assert not kept.running() and "only in the image" in kept.logs()
    finally:
        kept.remove(force=True)


def test_status_view_shows_use_against_limits_and_its_buttons_work(e2e_shell, e2e_settings) -> None:
    from mlpack.errors import ContainerNotFound
    from mlpack.ipython.display import StatusView, status_lines
    from mlpack.runtime import get_container

    clf, x = _iris_model(1.0)
    e2e_shell.user_ns.update(clf=clf, X_sample=x[::10])
    result = e2e_shell.run_cell("%containerize clf --sample X_sample --name nb-status --cpus 0.5 --memory 300Mi --pids-limit 64")
    assert result.error_in_exec is None
    svc = e2e_shell.user_ns["clf_service"]
    lines = status_lines(svc)
    assert lines[0].startswith(f"service nb-status: {svc.url} (")
    assert "/ 0.5 CPUs" in lines[2] and "/ 300.0 MiB" in lines[2] and "/ 64" in lines[2]
    view = StatusView(svc, widgets=True)  # real ipywidgets; no front end needed to click
    view.refresh()
    assert svc.url in view.info.value and "300.0 MiB" in view.info.value
    live = view.start_live(interval=0.2, duration=30)
    view.logs_btn.click()
    assert any("Uvicorn running" in str(o.get("text", "")) for o in view.out.outputs), view.out.outputs
    view.stop_btn.click()
    assert svc.container is None and view.stop_btn.disabled
    live.join(timeout=10)
    assert not live.is_alive()  # the live refresh ends with the container
    assert "not running" in view.info.value
    with pytest.raises(ContainerNotFound):
        get_container(e2e_settings, "nb-status")


def test_no_run_builds_only(e2e_shell, e2e_settings, capsys) -> None:
    from mlpack.oci.layout import Store

    clf, x = _iris_model(2.0)
    e2e_shell.user_ns.update(clf=clf, X_sample=x[::10])
    result = e2e_shell.run_cell("%containerize clf --sample X_sample --name nb-norun --no-run")
    out = capsys.readouterr().out
    assert result.error_in_exec is None, out
    svc = e2e_shell.user_ns["clf_service"]
    assert svc.container is None and svc.url is None and "[run] skipped: --no-run" in out
    assert Store(e2e_settings.store_dir).resolve("mlpack/nb-norun:latest").digest == svc.image.digest


def test_a_container_that_answers_differently_fails_parity_and_stays_for_inspection(e2e_shell, e2e_settings) -> None:
    clf, x = _iris_model(1.0)
    e2e_shell.user_ns.update(clf=clf, X_sample=x[::10])
    # A hook that is not deterministic: the kernel and the container cannot agree.
    cell = ("%%containerize clf --sample X_sample --name nb-parity\n"
            "import numpy as np\n\ndef postprocess(outputs):\n"
            "    outputs['probabilities'] = outputs['probabilities'] + np.random.rand(*outputs['probabilities'].shape)\n"
            "    return outputs\n")
    err = e2e_shell.run_cell(cell).error_in_exec
    assert isinstance(err, StageFailure) and err.stage == "parity", err
    assert "probabilities [probability]" in str(err) and "label [label]" not in str(err)
    svc = e2e_shell.user_ns["clf_service"]  # kept, running, for inspection
    assert svc.parity is not None and not svc.parity.passed
    assert svc.health in ("starting", "healthy") and svc.logs() != ""
    svc.stop()
    from mlpack.errors import ContainerNotFound
    from mlpack.runtime import get_container

    with pytest.raises(ContainerNotFound):
        get_container(e2e_settings, "nb-parity")


def test_a_memory_limit_too_small_is_reported_as_an_oom_kill(e2e_shell, e2e_settings) -> None:
    clf, x = _iris_model(1.0)
    e2e_shell.user_ns.update(clf=clf, X_sample=x[::10])
    # The server with onnxruntime needs about 50 MiB: 24 MiB cannot hold it.
    err = e2e_shell.run_cell("%containerize clf --sample X_sample --name nb-oom --memory 24Mi --timeout 60").error_in_exec
    assert isinstance(err, StageFailure), err
    text = "\n".join(err.lines())
    assert err.stage in ("run", "ready"), text
    assert "OOM" in text and "--memory" in text, text


def test_a_failing_build_step_shows_its_output(e2e_shell, e2e_settings, busybox_httpd_image, capsys) -> None:
    clf, x = _iris_model(1.0)
    e2e_shell.user_ns.update(clf=clf, X_sample=x[::10], busybox=busybox_httpd_image)
    # A base image without python: the dependency RUN step fails inside the builder's sandbox.
    err = e2e_shell.run_cell("%containerize clf --sample X_sample --name nb-buildfail --base {busybox}").error_in_exec
    assert isinstance(err, StageFailure), err
    shown = "\n".join(err._render_traceback_())
    assert err.stage == "build", shown
    assert "RUN failed with exit code 127" in shown and "python3: not found" in shown, shown
    assert "Traceback" not in shown and len(shown.splitlines()) < 60
    assert "[build] failed" in capsys.readouterr().out
