"""Services that never vanish: default names that do not collide, blue/green
replacement, failures that show the container's log, and services stopped when
the script that started them exits (unless detached). Real builds and containers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlpack.errors import ContainerNotFound, RunError
from mlpack.settings import Settings

pytestmark = [pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]

# Fine in the kernel (container parity runs it there), fatal when the server imports it.
CRASHING_HOOKS = textwrap.dedent('''
    import os
    if os.environ.get("MLPACK_BUNDLE"):
        raise RuntimeError("boom in the container")

    def postprocess(outputs):
        return outputs
''')


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype(np.float32), y


def _tree(iris, depth: int):
    from sklearn.tree import DecisionTreeClassifier

    x, y = iris
    return DecisionTreeClassifier(max_depth=depth, random_state=0).fit(x, y)


def _gone(settings: Settings, name: str) -> bool:
    from mlpack.runtime import get_container

    try:
        get_container(settings, name)
    except ContainerNotFound:
        return True
    return False


def test_two_unnamed_models_are_two_services(iris, e2e_settings: Settings) -> None:
    import mlpack

    x, _ = iris
    first = mlpack.serve(_tree(iris, 2), x[::10], settings=e2e_settings)
    try:
        second = mlpack.serve(_tree(iris, 4), x[::10], settings=e2e_settings)
        try:
            assert first.name.startswith("decisiontreeclassifier-") and second.name.startswith("decisiontreeclassifier-")
            assert first.name != second.name and len(first.name.rsplit("-", 1)[1]) == 8
            assert first.name.rsplit("-", 1)[1] == first.bundle.model_sha256[:8]
            # Both answer, each its own model.
            np.testing.assert_array_equal(first.predict(x[:30]).reshape(-1), _tree(iris, 2).predict(x[:30]))
            np.testing.assert_array_equal(second.predict(x[:30]).reshape(-1), _tree(iris, 4).predict(x[:30]))
            running = {s.name for s in mlpack.services(settings=e2e_settings)}
            assert {first.name, second.name} <= running
            found = mlpack.Service.get(second.name, settings=e2e_settings)
            assert found.url == second.url and found.bundle.model_sha256 == second.bundle.model_sha256
            assert second.health == "healthy"  # ready and verified, whatever the HEALTHCHECK says yet
            assert "<table>" in second._repr_html_() and second.name in second._repr_html_()
        finally:
            second.stop()
    finally:
        first.stop()
    assert _gone(e2e_settings, first.name) and _gone(e2e_settings, second.name)


def test_a_failed_replacement_leaves_the_old_service_answering(iris, e2e_settings: Settings) -> None:
    import mlpack

    x, _ = iris
    old = mlpack.serve(_tree(iris, 3), x[::10], name="bg-svc", settings=e2e_settings)
    try:
        old_url = old.url
        with pytest.raises(RunError) as info:
            mlpack.serve(_tree(iris, 5), x[::10], name="bg-svc", hooks_source=CRASHING_HOOKS,
                         settings=e2e_settings)
        message = str(info.value)
        # The exception text itself ends with the container's last log lines, and the hint fits.
        assert "before it was ready; the last lines of its log:" in message, message
        assert "boom in the container" in message, message
        assert "hooks.py" in info.value.hint and "mlpack logs bg-svc-next" in info.value.hint
        # The failed container is kept (stopped) for its log; the old one still serves.
        from mlpack.runtime import get_container

        kept = get_container(e2e_settings, "bg-svc-next")
        assert "boom in the container" in kept.logs() and not kept.running()
        assert old.url == old_url
        np.testing.assert_array_equal(old.predict(x[:20]).reshape(-1), _tree(iris, 3).predict(x[:20]))

        # A good replacement starts beside the old one, then takes its name.
        new = mlpack.serve(_tree(iris, 5), x[::10], name="bg-svc", settings=e2e_settings)
        try:
            assert new.name == "bg-svc" and new.container.name == "bg-svc"
            assert old.url is None  # the old container is gone
            assert _gone(e2e_settings, "bg-svc-next") or not get_container(e2e_settings, "bg-svc-next").running()
            np.testing.assert_array_equal(new.predict(x[:20]).reshape(-1), _tree(iris, 5).predict(x[:20]))
        finally:
            new.stop()
    finally:
        old.stop()
    assert _gone(e2e_settings, "bg-svc")


SCRIPT = textwrap.dedent('''
    import sys
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier
    import mlpack

    x, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y)
    service = mlpack.serve(model, x[::10], name=sys.argv[1], detach=sys.argv[2] == "detach")
    print("SERVING", service.url, flush=True)
''')


@pytest.mark.parametrize("mode", ["attached", "detach"])
def test_a_script_that_exits_stops_its_services_unless_detached(mode: str, e2e_settings: Settings,
                                                                tmp_path: Path) -> None:
    script = tmp_path / "serve_and_exit.py"
    script.write_text(SCRIPT)
    name = f"script-{mode}"
    env = dict(os.environ, MLPACK_HOME=str(e2e_settings.home), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(script), name, mode], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "SERVING http://127.0.0.1:" in proc.stdout, proc.stderr[-3000:]
    if mode == "attached":
        assert _gone(e2e_settings, name), "the script's service outlived it"
        return
    import mlpack

    service = mlpack.Service.get(name, settings=e2e_settings)
    try:
        assert service.container.running()
        assert service.predict(np.array([[5.1, 3.5, 1.4, 0.2]])).reshape(-1).tolist() == [0]
    finally:
        service.stop()
    assert _gone(e2e_settings, name)


def test_a_requirement_that_does_not_exist_is_named_and_replaces_nothing(iris, e2e_settings: Settings) -> None:
    import mlpack
    from mlpack.errors import BuildError

    x, _ = iris
    old = mlpack.serve(_tree(iris, 3), x[::10], name="req-svc", settings=e2e_settings)
    try:
        with pytest.raises(BuildError) as info:
            mlpack.serve(_tree(iris, 3), x[::10], name="req-svc", requirements=["six==99.0.0"],
                         settings=e2e_settings)
        assert "cannot install six==99.0.0" in str(info.value), str(info.value)[-2000:]
        assert info.value.stage == "build"
        assert old.url is not None and old.container.running()
        np.testing.assert_array_equal(old.predict(x[:5]).reshape(-1), _tree(iris, 3).predict(x[:5]))
    finally:
        old.stop()
