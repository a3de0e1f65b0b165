"""BuildKit behaviours that need a RUN step: shebang heredocs, ONBUILD RUN triggers,
and a failed RUN's exit status as `mlpack build`'s exit status."""

from __future__ import annotations

import pytest

from mlpack.builder.events import StepOutput
from mlpack.cli import main
from tests.unit.builder.helpers import Ctx

pytestmark = [pytest.mark.build, pytest.mark.runtime]


def test_shebang_heredoc_runs_by_its_interpreter(bctx: Ctx, busybox_httpd_image: str) -> None:
    # /bin/cat as the interpreter prints the script; /bin/sh would fail on "this is not shell"
    bctx.build(f"FROM {busybox_httpd_image}\nRUN <<EOF\n#!/bin/cat\nthis is not shell\nEOF\n",
               no_cache=True)
    outputs = [e.output for e in bctx.events if isinstance(e, StepOutput)]
    assert outputs == ["#!/bin/cat\nthis is not shell\n"]


def test_heredoc_name_with_spaces_quoted_is_literal(bctx: Ctx, busybox_httpd_image: str) -> None:
    image = bctx.build(f"FROM {busybox_httpd_image}\nARG X=expanded\n"
                       "RUN cat <<'E O F' > /literal\n$X\nE O F\n"
                       "RUN cat <<EOF > /expanded\n$X\nEOF\n")
    assert bctx.layer_file(image, "literal", -2) == b"$X\n"
    assert bctx.layer_file(image, "expanded", -1) == b"expanded\n"


def test_onbuild_run_trigger_runs_in_the_child(bctx: Ctx, busybox_httpd_image: str) -> None:
    image = bctx.build(f"FROM {busybox_httpd_image} AS base\nONBUILD RUN echo triggered > /t\n"
                       "FROM base\nRUN cat /t > /seen\n")
    assert bctx.layer_file(image, "seen") == b"triggered\n"
    assert "OnBuild" not in image.config.blob["config"]


def test_failed_run_exit_code_is_the_cli_exit_status(bctx: Ctx, busybox_httpd_image: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLPACK_HOME", str(bctx.settings.home))
    bctx.write("Dockerfile", f"FROM {busybox_httpd_image}\nRUN echo failing && exit 42\n")
    assert main(["build", "-q", str(bctx.root)]) == 42
    assert "RUN failed with exit code 42" in capsys.readouterr().err
