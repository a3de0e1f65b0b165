""".dockerignore matching, the stage graph with ARG scoping, config assembly."""

from __future__ import annotations

import pytest

from mlpack.builder.ignore import IgnoreMatcher
from mlpack.builder.imageconfig import ConfigState, parse_duration, parse_port
from mlpack.builder.parser import parse
from mlpack.builder.stages import plan
from mlpack.errors import BuildError
from mlpack.oci.config import ImageConfig


def test_dockerignore_rules() -> None:
    m = IgnoreMatcher(["# comment", "*.log", "**/__pycache__", "build/", "!build/keep.txt", "/abs", "docs/**/*.md",
                       "!docs/README.md"])
    assert m.ignored("x.log") and not m.ignored("sub/x.log")  # anchored at the root, like docker
    assert m.ignored("a/b/__pycache__/m.pyc") and m.ignored("__pycache__")
    assert m.ignored("build/out.bin") and not m.ignored("build/keep.txt")
    assert m.ignored("abs")
    assert m.ignored("docs/a/b/c.md") and m.ignored("docs/x.md") and not m.ignored("docs/README.md")
    assert not m.ignored("src/main.py")
    assert m.may_contain_exceptions("build") and not m.may_contain_exceptions("other")


def test_last_matching_pattern_wins() -> None:
    m = IgnoreMatcher(["*.txt", "!a.txt", "a.txt"])
    assert m.ignored("a.txt")


def test_plan_builds_only_what_the_target_needs() -> None:
    df = parse(
        "ARG BASE=busybox\n"
        "FROM ${BASE}:1 AS deps\n"
        "FROM scratch AS tools\n"
        "FROM scratch AS unused\n"
        "FROM deps AS app\n"
        "COPY --from=0 /a /a\n"
        "RUN --mount=type=bind,from=tools,target=/t true\n"
    )
    p = plan(df, build_args={}, target=None)
    assert [s.label for s in p.stages] == ["deps", "tools", "app"]
    assert p.stages[0].base == "busybox:1"
    p2 = plan(df, build_args={"BASE": "alpine", "NOPE": "1"}, target="deps")
    assert [s.label for s in p2.stages] == ["deps"] and p2.stages[0].base == "alpine:1"
    assert p2.unused_build_args == {"NOPE"}


def test_plan_errors() -> None:
    with pytest.raises(BuildError, match="only ARG may come before"):
        plan(parse("RUN x\nFROM scratch\n"), build_args={}, target=None)
    with pytest.raises(BuildError, match="target stage 'nope' not found"):
        plan(parse("FROM scratch AS a\n"), build_args={}, target="nope")
    with pytest.raises(BuildError, match="used twice"):
        plan(parse("FROM scratch AS a\nFROM scratch AS a\n"), build_args={}, target=None)
    with pytest.raises(BuildError, match="cannot be built here"):
        plan(parse("FROM --platform=linux/arm64 scratch\n"), build_args={}, target=None)
    with pytest.raises(BuildError, match="no FROM"):
        plan(parse("ARG A=1\n"), build_args={}, target=None)


def test_platform_args_in_from() -> None:
    p = plan(parse("FROM --platform=$BUILDPLATFORM img-${TARGETARCH}\n"), build_args={}, target=None)
    assert p.stages[0].base == "img-amd64"


@pytest.mark.parametrize(("text", "ns"), [("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8),
                                          ("1h", 3600 * 10**9), ("0", 0)])
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


def test_bad_duration_and_port() -> None:
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
    with pytest.raises(ValueError):
        parse_port("99999")
    assert parse_port("53/UDP") == "53/udp"


def test_config_state_from_base_and_blob() -> None:
    base = {"config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"]}, "rootfs": {"diff_ids": ["sha256:" + "a" * 64]},
            "history": [{"created_by": "base"}]}
    st = ConfigState.from_base(ImageConfig.from_blob(base))
    st.set_env("A", "2")
    st.add_history("ENV A=2", created="2023-01-01T00:00:00Z", empty_layer=True)
    st.healthcheck(["CMD-SHELL", "true"], interval="10s", timeout=None, start_period="1m", start_interval=None,
                   retries="2")
    blob = st.to_blob(created="2023-01-01T00:00:00Z")
    assert blob["config"]["Env"] == ["PATH=/bin", "A=2"]
    assert blob["config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 10**10,
                                             "StartPeriod": 60 * 10**9, "Retries": 2}
    assert blob["history"][-1] == {"created": "2023-01-01T00:00:00Z", "created_by": "ENV A=2", "empty_layer": True}
    assert blob["rootfs"] == {"diff_ids": ["sha256:" + "a" * 64], "type": "layers"}
    assert base["config"]["Env"] == ["PATH=/bin", "A=1"]  # the base config is not mutated
