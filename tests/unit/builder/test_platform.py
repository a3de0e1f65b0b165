"""--platform: parsing, the stage plan's platform args, images for another architecture built from
file operations only, and the refusals (RUN, deps=run, a base without that platform)."""

from __future__ import annotations

import json

import pytest

from mlpack.builder import BuildOptions
from mlpack.builder.depsmode import foreign_deps
from mlpack.builder.parser import parse
from mlpack.builder.stages import plan
from mlpack.errors import BuildError, ImageNotFound, MlpackError
from mlpack.oci.layer import Entry, write_entries
from mlpack.oci.layout import Store
from mlpack.oci.media import OCI_INDEX, REF_NAME
from mlpack.oci.multiarch import add_platform
from mlpack.oci.platforms import host_platform, parse_platform, platform_text
from tests.unit.builder.helpers import Ctx

HOST = host_platform()
OTHER = ("linux", "arm64") if HOST[1] == "amd64" else ("linux", "amd64")


@pytest.mark.parametrize("text, want", [
    ("linux/arm64", ("linux", "arm64")), ("linux/arm64/v8", ("linux", "arm64")),
    ("linux/aarch64", ("linux", "arm64")), ("arm64", ("linux", "arm64")), ("LINUX/AMD64", ("linux", "amd64")),
    ("linux/x86_64", ("linux", "amd64")),
])
def test_platform_spellings(text: str, want: tuple[str, str]) -> None:
    assert parse_platform(text) == want


@pytest.mark.parametrize("text", ["linux/s390x", "windows/amd64", "linux/arm64/v7", "linux/arm/v7", "",
                                  "linux/amd64/v2/x"])
def test_platforms_mlpack_does_not_build_are_refused(text: str) -> None:
    with pytest.raises(MlpackError, match="is not one mlpack builds for") as info:
        parse_platform(text)
    assert "linux/arm64" in (info.value.hint or "")
    with pytest.raises(BuildError, match="--platform"):
        BuildOptions(platform=text)


def test_plan_gives_each_stage_its_platform_and_the_target_args() -> None:
    df = parse("FROM --platform=$BUILDPLATFORM tools-${TARGETARCH} AS tools\n"
               "FROM base-${TARGETARCH}\nCOPY --from=tools /x /x\n")
    p = plan(df, build_args={}, target=None, platform=("linux", "arm64"))
    assert [s.base for s in p.stages] == ["tools-arm64", "base-arm64"]
    assert [s.platform for s in p.stages] == [platform_text(HOST), "linux/arm64"]
    assert p.platform_args["TARGETPLATFORM"] == "linux/arm64/v8" and p.platform_args["TARGETVARIANT"] == "v8"
    assert p.platform_args["BUILDARCH"] == HOST[1]
    assert plan(df, build_args={}, target=None).stages[1].platform == platform_text(HOST)


def test_an_image_for_another_architecture_from_file_operations(ctx: Ctx) -> None:
    ctx.write("model.txt", "weights")
    image = ctx.build("FROM scratch\nARG TARGETARCH\nCOPY model.txt /m/$TARGETARCH.txt\n",
                      platform=platform_text(OTHER))
    blob = json.loads(ctx.store.read_blob(image.manifest["config"]["digest"]))
    assert (blob["os"], blob["architecture"]) == OTHER
    assert blob.get("variant") == ("v8" if OTHER[1] == "arm64" else None)
    assert f"m/{OTHER[1]}.txt" in ctx.layer_members(image)
    entry = next(e for e in ctx.store.index()["manifests"] if (e.get("annotations") or {}).get(REF_NAME))
    assert entry["platform"]["architecture"] == OTHER[1]


def test_run_for_another_architecture_is_refused_naming_the_platform(ctx: Ctx) -> None:
    ctx.write("a", "x")
    with pytest.raises(BuildError, match=f"RUN cannot run for {platform_text(OTHER)}: this machine is "
                                         f"{platform_text(HOST)}") as info:
        ctx.build("FROM scratch\nCOPY a /a\nRUN true\n", platform=platform_text(OTHER))
    assert "deps=context" in (info.value.hint or "") and "$BUILDPLATFORM" in (info.value.hint or "")
    with pytest.raises(ImageNotFound):
        ctx.store.resolve("localhost/test/img:1", platform=OTHER)


def test_a_base_without_the_platform_is_refused_with_the_bootstrap_command(ctx: Ctx) -> None:
    ctx.write("a", "x")
    ctx.build("FROM scratch\nCOPY a /a\n", tag="localhost/test/base:1")  # this machine's platform only
    with pytest.raises(BuildError, match=f"base image 'localhost/test/base:1' in the store is for "
                                         f"{platform_text(HOST)}, and this build is for {platform_text(OTHER)}") as info:
        ctx.build("FROM localhost/test/base:1\nCOPY a /b\n", platform=platform_text(OTHER))
    assert f"mlpack base bootstrap --platform {platform_text(OTHER)}" in (info.value.hint or "")
    with pytest.raises(BuildError, match=f"has no {platform_text(OTHER)} image in the store"):
        ctx.build("FROM localhost/test/absent:1\n", platform=platform_text(OTHER))


def test_deps_for_another_architecture() -> None:
    said: list[str] = []
    assert foreign_deps("auto", OTHER, said.append) == "context"
    assert said and platform_text(OTHER) in said[0] and "deps=context" in said[0]
    assert foreign_deps("context", OTHER) == "context"
    with pytest.raises(BuildError, match=f"deps=run cannot build a {platform_text(OTHER)} image here") as info:
        foreign_deps("run", OTHER)
    assert "drop --deps run" in (info.value.hint or "")
    assert foreign_deps("run", HOST) == "run" and foreign_deps("auto", HOST) == "auto"


def _image(store: Store, arch: str, text: bytes) -> str:
    layer = write_entries(store, [Entry("hello.txt", data=text, mtime=1)])
    return store.put_image({"architecture": arch, "os": "linux"}, [layer])


def test_one_tag_holds_one_image_per_platform(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "store")
    ref = "localhost/test/multi:1"
    amd = _image(store, "amd64", b"amd")
    assert add_platform(store, ref, amd) == amd  # one platform: the tag names the manifest itself
    arm = _image(store, "arm64", b"arm")
    top = add_platform(store, ref, arm)
    index = json.loads(store.read_blob(top))
    assert index["mediaType"] == OCI_INDEX
    assert {(m["platform"]["architecture"], m["digest"]) for m in index["manifests"]} == {("amd64", amd), ("arm64", arm)}
    assert next(m for m in index["manifests"] if m["digest"] == arm)["platform"]["variant"] == "v8"
    assert store.resolve(ref, platform=("linux", "arm64")).digest == arm
    assert store.resolve(ref).digest == amd
    arm2 = _image(store, "arm64", b"arm again")  # the same platform again replaces it
    add_platform(store, ref, arm2)
    assert store.resolve(ref, platform=("linux", "arm64")).digest == arm2
    assert store.resolve(ref).digest == amd
    entries = store.index()["manifests"]
    assert len(entries) == 1 and entries[0]["annotations"][REF_NAME] == ref  # no untagged leftovers


def test_a_tag_of_another_architecture_alone_is_never_taken_for_this_machines(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(tmp_path / "store")
    other = _image(store, OTHER[1], b"other")
    top = add_platform(store, "localhost/test/other:1", other)
    assert json.loads(store.read_blob(top))["mediaType"] == OCI_INDEX  # an index, even with one platform
    assert store.resolve("localhost/test/other:1", platform=OTHER).digest == other
    with pytest.raises(ImageNotFound, match=f"has no {platform_text(HOST)} image"):
        store.resolve("localhost/test/other:1")
    listed = {i.ref: i.digest for i in store.list()}  # `mlpack images` still shows it
    assert listed == {"localhost/test/other:1": other}


def _cli(*argv: str, home) -> "subprocess.CompletedProcess[str]":  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    env = {**os.environ, "MLPACK_HOME": str(home), "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-m", "mlpack", *argv], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_the_cli_refuses_bad_platforms_before_any_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM scratch\n")
    out = _cli("build", "--platform", "linux/s390x", str(tmp_path / "ctx"), home=tmp_path / "home")
    assert out.returncode != 0 and "--platform: platform 'linux/s390x' is not one mlpack builds for" in out.stderr
    out = _cli("render", str(tmp_path / "nobundle"), "-o", str(tmp_path / "out"), "--platform", "linux/arm64",
               home=tmp_path / "home")
    assert out.returncode != 0 and "--platform picks the platform whose wheels --deps context installs" in out.stderr
    assert "add --deps context" in out.stderr
    out = _cli("base", "bootstrap", "--platform", "linux/mips", home=tmp_path / "home")
    assert out.returncode != 0 and "is not one mlpack builds for" in out.stderr
    assert not (tmp_path / "home" / "store" / "index.json").exists() and not (tmp_path / "out").exists()
