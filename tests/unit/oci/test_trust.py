"""certs.d lookup (Docker's and containers/image's layout) and the SSL contexts built from it."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from mlpack.errors import RegistryError
from mlpack.oci.trust import HostCerts, Trust
from mlpack.settings import Settings


def test_settings_look_in_the_users_certs_d_first(tmp_path: Path) -> None:
    settings = Settings.from_env({"MLPACK_HOME": str(tmp_path), "MLPACK_EXTRA_CA": "/a.pem,/b.pem"})
    assert settings.certs_dirs == (tmp_path / "certs.d", Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))
    trust = Trust.from_settings(settings)
    assert trust.certs_dirs == settings.certs_dirs and trust.extra_ca_files == (Path("/a.pem"), Path("/b.pem"))


def test_first_directory_with_the_host_wins_and_files_are_read_as_docker_does(tmp_path: Path) -> None:
    mine, system = tmp_path / "mine", tmp_path / "system"
    for base in (mine, system):
        (base / "reg.example:5000").mkdir(parents=True)
    (system / "reg.example:5000" / "ca.crt").write_text("system")
    (mine / "reg.example:5000" / "ca.crt").write_text("x")
    (mine / "reg.example:5000" / "extra.crt").write_text("x")
    (mine / "reg.example:5000" / "b.cert").write_text("x")
    (mine / "reg.example:5000" / "b.key").write_text("x")
    (mine / "reg.example:5000" / "a.cert").write_text("x")
    (mine / "reg.example:5000" / "a.key").write_text("x")
    (mine / "reg.example:5000" / "README").write_text("ignored")
    (system / "other.example").mkdir()
    trust = Trust((mine, system))
    got = trust.host_certs("reg.example:5000")
    d = mine / "reg.example:5000"
    assert got == HostCerts(d, (d / "ca.crt", d / "extra.crt"), (d / "a.cert", d / "a.key"))
    assert trust.host_certs("other.example") == HostCerts(system / "other.example")
    assert trust.host_certs("reg.example") == HostCerts()  # the port is part of the name, as in Docker
    assert trust.hint_dir("reg.example") == str(mine / "reg.example")
    assert str(mine / "reg.example" / "ca.crt") in trust.hint("reg.example")


def test_half_a_client_pair_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "client.key").write_text("x")
    with pytest.raises(RegistryError, match="client.cert") as err:
        Trust((tmp_path,)).host_certs("h")
    assert "Docker" in (err.value.hint or "")


@pytest.mark.parametrize("host", ["..", "../etc", "a/../../b", "/etc", ".hidden", "a..b", "x\x00y", ""])
def test_hostile_host_names_never_become_paths(tmp_path: Path, host: str) -> None:
    (tmp_path / "certs.d").mkdir()
    (tmp_path / "etc").mkdir()  # what ../etc would reach
    (tmp_path / "etc" / "ca.crt").write_text("x")
    assert Trust((tmp_path / "certs.d",)).host_certs(host) == HostCerts()


def test_context_adds_to_the_system_trust_and_rejects_garbage(tmp_path: Path) -> None:
    system = len(ssl.create_default_context().get_ca_certs())
    assert len(Trust().context("h").get_ca_certs()) == system
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "ca.crt").write_text("not a certificate")
    with pytest.raises(RegistryError, match="CA file") as err:
        Trust((tmp_path,)).context("h")
    assert err.value.step == "tls"
    unchecked = Trust((tmp_path,)).context("h", verify=False)  # an insecure registry: nothing verified
    assert unchecked.verify_mode == ssl.CERT_NONE and not unchecked.check_hostname
