"""Builds without RUN (no root needed): COPY/ADD semantics, config, args, errors."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from mlpack.errors import BuildError
from tests.unit.builder.helpers import Ctx


def test_copy_context_with_dockerignore_globs_and_dest_rules(ctx: Ctx) -> None:
    ctx.write("app/main.py", "print(1)\n")
    ctx.write("app/__pycache__/main.cpython-311.pyc", b"x")
    ctx.write("app/keep.log", "keep")
    ctx.write("app/drop.log", "drop")
    ctx.write("notes.md", "n")
    ctx.write("data/a.csv", "a")
    ctx.write("data/b.csv", "b")
    ctx.write("data/c.txt", "c")
    ctx.write(".dockerignore", "**/__pycache__\napp/*.log\n!app/keep.log\nnotes.md\n")
    image = ctx.build(
        "FROM scratch\n"
        "COPY app/ /srv/app/\n"
        "COPY data/*.csv /csv/\n"
        "COPY data/c.txt /renamed.txt\n"
        "WORKDIR /w\n"
        "COPY data/a.csv rel/\n"
    )
    app = ctx.layer_members(image, 0)
    assert "srv/app/main.py" in app and "srv/app/keep.log" in app
    assert "srv/app/drop.log" not in app and not any("__pycache__" in n for n in app)
    assert {"csv/a.csv", "csv/b.csv"} <= set(ctx.layer_members(image, 1))
    assert "csv/c.txt" not in ctx.layer_members(image, 1)
    assert ctx.layer_file(image, "renamed.txt", 2) == b"c"
    assert "w/rel/a.csv" in ctx.layer_members(image, 4)
    with pytest.raises(BuildError, match="notes.md: not found in the build context"):
        ctx.build("FROM scratch\nCOPY notes.md /\n")


def test_multiple_sources_need_a_directory_destination(ctx: Ctx) -> None:
    ctx.write("a", "1")
    ctx.write("b", "2")
    with pytest.raises(BuildError, match="must be a directory ending in /"):
        ctx.build("FROM scratch\nCOPY a b /dest\n")


def test_modes_owners_and_exact_mtimes(ctx: Ctx) -> None:
    f = ctx.write("tool.sh", "#!/bin/sh\n", mode=0o755)
    os.utime(f, (1_600_000_000.75, 1_600_000_000.75))
    late = ctx.write("late.txt", "x")
    os.utime(late, (1_800_000_000, 1_800_000_000))
    image = ctx.build(
        "FROM scratch\n"
        "COPY tool.sh late.txt /bin/\n"
        "COPY --chown=1000:2000 --chmod=0640 tool.sh /secret\n"
        "COPY --chown=7 tool.sh /seven\n"
    )
    first = ctx.layer_members(image, 0)
    assert first["bin/tool.sh"].mode == 0o755
    assert first["bin/tool.sh"].mtime == 1_600_000_000  # exact seconds below the clamp
    assert first["bin/late.txt"].mtime == 1_700_000_000  # clamped to SOURCE_DATE_EPOCH
    assert first["bin/tool.sh"].uid == 0 and first["bin/tool.sh"].uname == ""
    secret = ctx.layer_members(image, 1)["secret"]
    assert (secret.uid, secret.gid, secret.mode) == (1000, 2000, 0o640)
    seven = ctx.layer_members(image, 2)["seven"]
    assert (seven.uid, seven.gid) == (7, 7)
    with pytest.raises(BuildError, match="not an octal mode"):
        ctx.build("FROM scratch\nCOPY --chmod=rwx tool.sh /x\n")
    with pytest.raises(BuildError, match="user 'nobody' is not in /etc/passwd"):
        ctx.build("FROM scratch\nCOPY --chown=nobody tool.sh /x\n")


def test_copy_heredoc_and_variable_expansion(ctx: Ctx) -> None:
    image = ctx.build(
        "FROM scratch\n"
        "ARG WHO=world\n"
        "ENV DIR=/etc/app\n"
        "COPY <<EOF ${DIR}/greeting.txt\nhello $WHO\nEOF\n"
        "COPY <<'RAW' /raw.txt\nhello $WHO\nRAW\n",
        build_args={"WHO": "mlpack"},
    )
    assert ctx.layer_file(image, "etc/app/greeting.txt", 0) == b"hello mlpack\n"
    assert ctx.layer_file(image, "raw.txt", 1) == b"hello $WHO\n"


def test_add_extracts_local_tar_and_refuses_unpinned_urls(ctx: Ctx) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"inside"
        info = tarfile.TarInfo("pkg/file.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    ctx.write("bundle.tgz", buf.getvalue())
    ctx.write("plain.txt", "plain")
    image = ctx.build("FROM scratch\nADD bundle.tgz /opt/\nADD plain.txt /opt/\n")
    assert ctx.layer_file(image, "opt/pkg/file.txt", 0) == b"inside"
    assert ctx.layer_file(image, "opt/plain.txt", 1) == b"plain"
    with pytest.raises(BuildError, match="refused without --checksum"):
        ctx.build("FROM scratch\nADD https://example.com/x.bin /x\n")
    with pytest.raises(BuildError, match="COPY cannot fetch URLs"):
        ctx.build("FROM scratch\nCOPY https://example.com/x.bin /x\n")


def test_add_refuses_archive_escaping_destination(ctx: Ctx) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil")
        tar.addfile(info, io.BytesIO(b""))
    ctx.write("evil.tar", buf.getvalue())
    with pytest.raises(BuildError, match="unsafe member"):
        ctx.build("FROM scratch\nADD evil.tar /opt/\n")


def test_config_metadata_instructions(ctx: Ctx) -> None:
    image = ctx.build(
        "FROM scratch\n"
        "ARG PORT=8080\n"
        'ENV A=1 B="two words"\n'
        "ENV LEGACY value with spaces\n"
        'LABEL org.opencontainers.image.title="t $A" other=${B}\n'
        "MAINTAINER someone\n"
        "WORKDIR /srv\n"
        "WORKDIR sub\n"
        "USER 1000:1000\n"
        "EXPOSE ${PORT} 9000-9001/udp\n"
        "VOLUME [\"/data\", \"/cache\"]\n"
        "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n"
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD curl -f http://localhost/\n"
        "STOPSIGNAL SIGINT\n"
        "ENTRYPOINT [\"/serve\"]\n"
        "CMD serve --port $PORT\n",
    )
    cfg = image.config.blob["config"]
    assert cfg["Env"][1:] == ["A=1", "B=two words", "LEGACY=value with spaces"]
    assert cfg["Labels"] == {"org.opencontainers.image.title": "t 1", "other": "two words"}
    assert image.config.author == "someone"  # MAINTAINER sets the Author, as BuildKit does
    assert cfg["WorkingDir"] == "/srv/sub"
    assert cfg["User"] == "1000:1000"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "9000/udp": {}, "9001/udp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/cache": {}}
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 30 * 10**9,
                                  "Timeout": 5 * 10**9, "StartPeriod": 60 * 10**9, "Retries": 3}
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Entrypoint"] == ["/serve"]
    assert cfg["Cmd"] == ["/bin/bash", "-o", "pipefail", "-c", "serve --port $PORT"]  # shell form is not expanded
    history = image.config.blob["history"]
    assert [h.get("empty_layer", False) for h in history].count(False) == len(image.layers) == 2  # two WORKDIRs
    assert history[0] == {"created": "2023-11-14T22:13:20Z", "created_by": "ARG PORT=8080", "empty_layer": True}
    assert image.ref and image.ref.endswith("localhost/test/img:1")


def test_healthcheck_none_and_errors(ctx: Ctx) -> None:
    image = ctx.build("FROM scratch\nHEALTHCHECK NONE\n")
    assert image.config.blob["config"]["Healthcheck"] == {"Test": ["NONE"]}
    for bad, msg in [("HEALTHCHECK --interval=soon CMD x", "invalid duration"),
                     ("HEALTHCHECK --bogus=1 CMD x", "unknown flag"),
                     ("HEALTHCHECK x", "unknown type 'x' in HEALTHCHECK"),
                     ("EXPOSE http", "invalid port"),
                     ("SHELL /bin/sh -c", "JSON form"),
                     ("ENV", "at least one"),
                     ("LABEL novalue", "LABEL must have two arguments"),
                     ("COPY onlyone", "source\\(s\\) and destination"),
                     ("STOPSIGNAL 1.5", "invalid stop signal"),
                     ("USER", "USER requires at least one argument")]:
        with pytest.raises(BuildError, match=msg) as info:
            ctx.build(f"FROM scratch\n{bad}\n")
        assert "Dockerfile:2" in str(info.value)


def test_entrypoint_resets_inherited_cmd_and_target_stage(ctx: Ctx) -> None:
    ctx.write("f", "x")
    image = ctx.build(
        "FROM scratch AS base\nCMD [\"inherited\"]\nCOPY f /f\n"
        "FROM base AS app\nENTRYPOINT [\"/app\"]\n"
        "FROM scratch AS other\nCOPY --from=app /f /g\n"
    )
    assert ctx.layer_file(image, "g") == b"x"
    app = ctx.build(target="app")
    assert app.config.blob["config"].get("Cmd") is None and app.config.blob["config"]["Entrypoint"] == ["/app"]
    started = [e.stage_name for e in ctx.events if type(e).__name__ == "StageStarted"]
    assert started == ["base", "app"]  # "other" is not needed for --target app


def test_expansion_error_names_the_line(ctx: Ctx) -> None:
    with pytest.raises(BuildError, match=r"Dockerfile:2: WORKDIR: NEEDED: set it"):
        ctx.build("FROM scratch\nWORKDIR ${NEEDED:?set it}\n")
