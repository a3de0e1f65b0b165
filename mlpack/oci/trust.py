"""TLS trust per registry host, laid out as Docker's and containers/image's certs.d.

A registry with a private CA (or one that wants a client certificate) is
configured by files in ``<dir>/<host[:port]>/``, where ``<dir>`` is the first
of ``$MLPACK_HOME/certs.d``, ``/etc/containers/certs.d`` and
``/etc/docker/certs.d`` that has a directory for the host (containers/image's
order, the user's own first). In it, as Docker reads it:

- ``*.crt``: CA certificates, ADDED to the system trust (never replacing it);
- ``<name>.cert`` + ``<name>.key``: a client certificate for mutual TLS (a
  ``.cert`` without its ``.key``, or the reverse, is an error, as in Docker;
  with several pairs the first by name is used).

``MLPACK_EXTRA_CA`` files (``Settings.extra_ca_files``) are added for every
host. A host name is checked before it becomes a path: it comes from image
references and from registry redirects, which may be hostile.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from mlpack.errors import RegistryError
from mlpack.settings import Settings

__all__ = ["Trust", "HostCerts"]

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class HostCerts:
    """What certs.d holds for one host (empty when nothing is configured)."""

    directory: Path | None = None
    ca_files: tuple[Path, ...] = ()
    client: tuple[Path, Path] | None = None  # (cert, key)


@dataclass(frozen=True)
class Trust:
    """Where to look for per-host certificates, and CA files trusted for every host."""

    certs_dirs: tuple[Path, ...] = ()
    extra_ca_files: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> "Trust":
        return cls(settings.certs_dirs, tuple(settings.extra_ca_files))

    def host_certs(self, host: str) -> HostCerts:
        """The certs.d entry for ``host`` (``name[:port]``), from the first directory that has one."""
        if not _HOST.match(host) or ".." in host:
            return HostCerts()
        for base in self.certs_dirs:
            directory = Path(base) / host
            if directory.is_dir():
                return _read_dir(directory)
        return HostCerts()

    def context(self, host: str, *, verify: bool = True) -> ssl.SSLContext:
        """An SSL context for ``host``: system trust + MLPACK_EXTRA_CA + certs.d, and its client cert.

        ``verify=False`` is for registries configured insecure (Docker skips verification for them).
        """
        ctx = ssl.create_default_context()
        certs = self.host_certs(host)
        if verify:
            for path in (*self.extra_ca_files, *certs.ca_files):
                try:
                    ctx.load_verify_locations(cafile=str(path))
                except (OSError, ssl.SSLError) as exc:
                    raise RegistryError(f"cannot load the CA file {path}: {exc}",
                                        hint="it must be a readable PEM certificate (MLPACK_EXTRA_CA or "
                                             f"{host}/*.crt in a certs.d directory)", registry=host,
                                        step="tls") from None
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if certs.client:
            cert, key = certs.client
            try:
                ctx.load_cert_chain(str(cert), str(key))
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"cannot load the client certificate {cert} with {key}: {exc}",
                                    hint="the .cert must be a PEM certificate and the .key its unencrypted "
                                         "PEM private key", registry=host, step="tls") from None
        return ctx

    def hint_dir(self, host: str) -> str:
        """The certs.d directory a user would create for ``host`` (the first one looked up)."""
        certs = self.host_certs(host)
        if certs.directory is not None:
            return str(certs.directory)
        return str(Path(self.certs_dirs[0]) / host) if self.certs_dirs else f"<certs.d>/{host}"

    def hint(self, host: str) -> str:
        """What to do when ``host``'s certificate is not trusted."""
        dirs = [str(Path(d) / host) for d in self.certs_dirs] or ["<certs.d>/" + host]
        return (f"put the registry's CA certificate in {dirs[0]}/ca.crt (also read: "
                f"{', '.join(d + '/' for d in dirs[1:]) or 'nothing else'}) or name it in MLPACK_EXTRA_CA; "
                "a registry you trust without TLS checks goes in MLPACK_INSECURE_REGISTRIES")


def _read_dir(directory: Path) -> HostCerts:
    try:
        names = sorted(p.name for p in directory.iterdir() if p.is_file())
    except OSError as exc:
        raise RegistryError(f"cannot read the certs.d directory {directory}: {exc}",
                            hint="fix its permissions", step="tls") from None
    cas = tuple(directory / n for n in names if n.endswith(".crt"))
    client = None
    for name in names:
        stem, _, ext = name.rpartition(".")
        if ext not in ("cert", "key"):
            continue
        pair = "key" if ext == "cert" else "cert"
        if f"{stem}.{pair}" not in names:
            raise RegistryError(f"{directory / name} has no matching {stem}.{pair}",
                                hint="a client certificate needs both <name>.cert and <name>.key (Docker's layout)",
                                step="tls")
        if client is None and ext == "cert":
            client = (directory / name, directory / f"{stem}.key")
    return HostCerts(directory, cas, client)
