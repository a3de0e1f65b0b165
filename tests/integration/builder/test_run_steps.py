"""RUN in the sandbox: changesets (whiteouts, opaque dirs, copy-up noise), users,
mounts (cache, secret, bind, tmpfs), network, heredocs, failures, reproducibility."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from mlpack.builder.events import StepCached, StepOutput
from mlpack.errors import BuildError
from mlpack.settings import Settings
from mlpack.oci.validate import verify
from tests.unit.builder.helpers import Ctx

pytestmark = [pytest.mark.build, pytest.mark.runtime]


def _members(ctx: Ctx, image, index: int = -1) -> dict[str, tarfile.TarInfo]:  # type: ignore[no-untyped-def]
    return ctx.layer_members(image, index)


def test_whiteout_opaque_and_copy_up_noise(bctx: Ctx, busybox_httpd_image: str) -> None:
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        "RUN rm /www/index.html && chmod 644 /etc/hosts && touch /new-file\n"
        "RUN rm -rf /home/app && mkdir -p /home/app && echo fresh > /home/app/only.txt\n"
    )
    first = _members(bctx, image, -2)
    assert "www/.wh.index.html" in first  # the deletion of a lower file became a whiteout
    assert "new-file" in first
    assert "etc/hosts" not in first  # chmod to the same mode: copy-up noise, not a change
    second = _members(bctx, image, -1)
    assert "home/app/.wh..wh..opq" in second  # removed and re-made: an opaque directory
    assert "home/app/only.txt" in second
    for member in list(first.values()) + list(second.values()):
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in member.pax_headers), member.name


def test_user_env_args_workdir(bctx: Ctx, busybox_httpd_image: str) -> None:
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        "ARG GREETING=hi\n"
        "ENV TARGET=world\n"
        "USER app\n"
        "WORKDIR /home/app/work\n"
        'RUN echo "$GREETING $TARGET $(id -u):$(id -g) $(pwd)" > out.txt\n',
        build_args={"GREETING": "hello"},
    )
    assert bctx.layer_file(image, "home/app/work/out.txt") == b"hello world 1000:1000 /home/app/work\n"
    workdir = _members(bctx, image, -2)["home/app/work"]
    assert (workdir.uid, workdir.gid) == (1000, 1000)
    env = image.config.blob["config"]["Env"]
    assert "TARGET=world" in env and not any(e.startswith("GREETING=") for e in env)  # ARGs are not persisted


def test_cache_mount_persists_and_secret_never_lands_in_a_layer(bctx: Ctx, busybox_httpd_image: str, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    dockerfile = (
        f"FROM {busybox_httpd_image}\n"
        "RUN --mount=type=cache,target=/var/cache/thing,id=test-counter "
        "echo run >> /var/cache/thing/runs && wc -l < /var/cache/thing/runs > /runs\n"
        "RUN --mount=type=secret,id=token,required=true cp /run/secrets/token /copied && "
        "test -s /run/secrets/ca-bundle || true\n"
        "RUN --mount=type=secret,id=ca-bundle test -s /run/secrets/ca-bundle && echo yes > /ca-visible\n"
    )
    first = bctx.build(dockerfile, secrets=[f"id=token,src={secret}"])
    runs_first = int(bctx.layer_file(first, "runs", -3).strip())
    again = bctx.build(no_cache=True, secrets={"token": str(secret)})
    assert int(bctx.layer_file(again, "runs", -3).strip()) == runs_first + 1
    assert bctx.layer_file(again, "copied", -2) == b"s3cr3t-value"  # the step copied it on purpose
    assert bctx.layer_file(again, "ca-visible", -1) == b"yes\n"  # host CA bundle by default
    for i in range(len(again.layers)):
        names = _members(bctx, again, i)
        assert not any(n.startswith("run/secrets") for n in names)
        assert not any("var/cache/thing" in n for n in names)  # the cache mount's content stays out
    with pytest.raises(BuildError, match="secret 'token' is required"):
        bctx.build(no_cache=True)


def test_bind_and_tmpfs_mounts_and_heredoc(bctx: Ctx, busybox_httpd_image: str) -> None:
    bctx.write("scripts/setup.sh", "echo from-context > /from-ctx\n")
    image = bctx.build(
        f"FROM {busybox_httpd_image} AS tools\n"
        "RUN mkdir /tools && echo tool > /tools/t\n"
        f"FROM {busybox_httpd_image}\n"
        "RUN --mount=type=bind,source=scripts,target=/mnt/s sh /mnt/s/setup.sh\n"
        "RUN --mount=type=bind,from=tools,source=/tools,target=/mnt/t cp /mnt/t/t /copied-tool\n"
        "RUN --mount=type=tmpfs,target=/scratch echo temp > /scratch/x && cat /scratch/x > /seen\n"
        "RUN <<EOF\n"
        "set -e\n"
        "echo line1 > /heredoc\n"
        "echo line2 >> /heredoc\n"
        "EOF\n"
    )
    assert bctx.layer_file(image, "from-ctx", -4) == b"from-context\n"
    assert bctx.layer_file(image, "copied-tool", -3) == b"tool\n"
    seen = _members(bctx, image, -2)
    assert "seen" in seen and not any(n.startswith("scratch/") for n in seen)
    assert bctx.layer_file(image, "heredoc", -1) == b"line1\nline2\n"
    assert not any(n.startswith("mnt") for n in _members(bctx, image, -4))  # mount points are not content


def test_network_none_has_only_loopback(bctx: Ctx, busybox_httpd_image: str) -> None:
    image = bctx.build(
        f"FROM {busybox_httpd_image}\n"
        "RUN --network=none cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /ifaces\n"
    )
    assert bctx.layer_file(image, "ifaces").split() == [b"lo"]


def test_failing_run_shows_output_and_leaves_the_store_unchanged(bctx: Ctx, busybox_httpd_image: str) -> None:
    index_before = (bctx.settings.store_dir / "index.json").read_bytes()
    with pytest.raises(BuildError) as info:
        bctx.build(f"FROM {busybox_httpd_image}\nRUN echo about to fail && exit 7\n", tag="localhost/test/never:1")
    err = info.value
    assert err.exit_code == 7 and "about to fail" in err.output
    assert "Dockerfile:2" in str(err) and "exit code 7" in str(err)
    assert (bctx.settings.store_dir / "index.json").read_bytes() == index_before


def test_run_steps_are_cached_and_reproducible(tmp_path: Path, busybox_httpd_image: str, run_settings: Settings) -> None:
    dockerfile = f"FROM {busybox_httpd_image}\nRUN mkdir -p /data && echo payload > /data/file && ln -s file /data/link\n"
    digests = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        ctx = Ctx(root, run_settings)
        digests.append(ctx.build(dockerfile, no_cache=True).digest)
    assert digests[0] == digests[1]
    ctx.build()
    assert any(isinstance(e, StepCached) for e in ctx.events)


def test_step_output_event(bctx: Ctx, busybox_httpd_image: str) -> None:
    bctx.build(f"FROM {busybox_httpd_image}\nRUN echo visible-output\n", no_cache=True)
    outputs = [e.output for e in bctx.events if isinstance(e, StepOutput)]
    assert any("visible-output" in o for o in outputs)


def test_config_keeps_base_and_history_counts_layers(bctx: Ctx, busybox_httpd_image: str) -> None:
    image = bctx.build(f"FROM {busybox_httpd_image}\nENV X=1\nRUN true > /x\nCMD [\"/bin/sh\"]\n")
    history = image.config.blob["history"]
    assert sum(1 for h in history if not h.get("empty_layer")) == len(image.layers)
    assert image.config.blob["config"]["ExposedPorts"] == {"8080/tcp": {}}  # inherited from the base
    assert json.loads(json.dumps(image.config.blob))["rootfs"]["diff_ids"] == image.diff_ids


def test_intermediate_stage_layers_become_real_when_targeted(bctx: Ctx, busybox_httpd_image: str) -> None:
    dockerfile = (
        f"FROM {busybox_httpd_image} AS build\n"
        "RUN echo artifact > /artifact && rm /www/index.html\n"
        f"FROM {busybox_httpd_image}\n"
        "COPY --from=build /artifact /artifact\n"
    )
    final = bctx.build(dockerfile)
    assert bctx.layer_file(final, "artifact") == b"artifact\n"
    # the build stage's RUN was kept as a directory only; targeting the stage writes the layer
    staged = bctx.build(target="build", tag="localhost/test/build-stage:1")
    assert any(isinstance(e, StepCached) for e in bctx.events)
    names = _members(bctx, staged)
    assert "artifact" in names and "www/.wh.index.html" in names
    report = verify(bctx.store)
    assert report.ok, report.problems


def test_extra_ca_files_join_the_default_ca_bundle(tmp_path: Path, run_settings: Settings,
                                                   busybox_httpd_image: str) -> None:
    import dataclasses

    extra = tmp_path / "corp-ca.pem"
    extra.write_text("-----BEGIN CERTIFICATE-----\nCORPORATE-TEST-CA\n-----END CERTIFICATE-----\n")
    root = tmp_path / "ctx"
    root.mkdir()
    ctx = Ctx(root, dataclasses.replace(run_settings, extra_ca_files=(extra,)))
    image = ctx.build(f"FROM {busybox_httpd_image}\n"
                      "RUN --mount=type=secret,id=ca-bundle grep -c CORPORATE-TEST-CA /run/secrets/ca-bundle > /n\n",
                      no_cache=True)
    assert ctx.layer_file(image, "n") == b"1\n"
    assert not list((run_settings.cache_dir / "build" / "tmp").glob("ca-bundle-*"))


def test_bind_mount_cannot_follow_a_symlink_out_of_the_context(bctx: Ctx, busybox_httpd_image: str) -> None:
    import os

    os.symlink("/etc", bctx.root / "hostetc")
    with pytest.raises(BuildError, match="outside"):
        bctx.build(f"FROM {busybox_httpd_image}\nRUN --mount=type=bind,source=hostetc,target=/h cat /h/shadow\n")
