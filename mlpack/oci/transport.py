"""HTTP for the registry client: stdlib http.client, keep-alive, retries, auth.

Why the standard library and not httpx: ``mlpack.oci`` must work with only
mlpack's core dependencies (httpx is in the notebook extra), and http.client
gives what this needs: streaming bodies both ways with a large block size,
one keep-alive connection per host, and full control over redirects.

Redirects are answers from a host that may be hostile: every hop must be
http(s) (a ``file://`` Location is refused by name), plain HTTP only to a
loopback address or a registry configured insecure, and the Authorization
header goes along only while the hop stays on the registry's own scheme and
host (the distribution registry redirects to itself; blob storage on another
host never sees the token). Every response body is read against a stall
deadline: a server that sends less than ``stall_min_bytes`` in ``stall_s``
seconds (one byte every few seconds keeps a plain socket timeout happy
forever) breaks the read with :class:`StalledRead`.

Scheme, as Docker chooses it: HTTPS first for every registry. A loopback
registry, or one configured insecure, falls back to plain HTTP only when the
TLS handshake gets a non-TLS answer (a plain-HTTP server), and only before
the first HTTPS answer (no downgrade later in a session); an explicit
``http://`` mirror is plain HTTP from the start. Certificates are checked
against the system trust plus ``MLPACK_EXTRA_CA`` plus the host's certs.d
entry (:mod:`mlpack.oci.trust`); a configured-insecure registry's certificate
is not checked (Docker's meaning of insecure). An untrusted certificate or a
refused client certificate is not retried: it fails at once with a hint
naming the certs.d path.
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from mlpack.errors import RegistryError
from mlpack.oci.auth import Credentials, parse_challenge
from mlpack.oci.trust import Trust

__all__ = ["Transport", "Response", "StalledRead", "is_loopback"]

_BLOCK = 1 << 20
_RETRY_STATUS = {429, 500, 502, 503, 504}
# OpenSSL's reasons when the peer answers a ClientHello with something that is not TLS
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST",
            "PACKET_LENGTH_TOO_LONG", "UNEXPECTED_EOF_WHILE_READING"}


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (port ignored)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class StalledRead(OSError):
    """The server stopped sending (or sends too slowly to ever finish)."""


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    raw: http.client.HTTPResponse
    url: str
    stall_s: float = 60.0
    stall_min_bytes: int = 16 << 10
    _window_start: float = field(default_factory=time.monotonic)
    _window_bytes: int = 0

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all when negative), each arrival checked against the stall deadline."""
        out = bytearray()
        while n < 0 or len(out) < n:
            chunk = self.raw.read1(_BLOCK if n < 0 else n - len(out))
            if not chunk:
                break
            out += chunk
            self._arrived(len(chunk))
        return bytes(out)

    def _arrived(self, count: int) -> None:
        self._window_bytes += count
        now = time.monotonic()
        if now - self._window_start < self.stall_s:
            return
        if self._window_bytes < self.stall_min_bytes:
            raise StalledRead(f"{self.url} sent {self._window_bytes} bytes in {now - self._window_start:.0f} s, "
                              f"less than {self.stall_min_bytes} in {self.stall_s:g} s: the transfer stalled")
        self._window_start, self._window_bytes = now, 0

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def close(self) -> None:
        self.raw.close()


@dataclass
class Transport:
    """Talks to one registry host over HTTPS, or plain HTTP where allowed (see the module doc)."""

    registry: str
    insecure: bool = False  # configured insecure: certificate unchecked, plain-HTTP fallback
    credentials: Credentials | None = None
    retries: int = 4
    backoff_s: float = 0.5
    timeout_s: float = 60.0  # per socket operation (connect, one recv)
    stall_s: float = 60.0
    stall_min_bytes: int = 16 << 10
    insecure_hosts: tuple[str, ...] = ()  # other hosts allowed plain HTTP (MLPACK_INSECURE_REGISTRIES)
    trust: Trust = field(default_factory=Trust)
    plain_only: bool = False  # an explicit http:// endpoint
    sleep: Callable[[float], None] = time.sleep
    _conns: dict[tuple[str, str], http.client.HTTPConnection] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)
    _basic: bool = False
    _scheme: str | None = None  # settled by the first answer
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return "http" if self.plain_only else (self._scheme or "https")

    @property
    def may_fall_back(self) -> bool:
        """Whether a non-TLS answer to HTTPS may switch this registry to plain HTTP."""
        return self._scheme is None and (self.insecure or is_loopback(self.registry))

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.registry}"

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self._conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(netloc, timeout=self.timeout_s, blocksize=_BLOCK,
                                                   context=self._context(netloc))
            else:
                conn = http.client.HTTPConnection(netloc, timeout=self.timeout_s, blocksize=_BLOCK)
            self._conns[key] = conn
        return conn

    def _context(self, netloc: str) -> ssl.SSLContext:
        host = netloc.rsplit("@", 1)[-1]
        ctx = self._contexts.get(host)
        if ctx is None:
            unchecked = host in self.insecure_hosts or (self.insecure and host == self.registry)
            ctx = self._contexts[host] = self.trust.context(host, verify=not unchecked)
        return ctx

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def request(self, method: str, url: str, *, step: str, headers: dict[str, str] | None = None,
                body: bytes | Callable[[], IO[bytes]] | None = None, scope: str = "",
                ok: tuple[int, ...] = (200,), allow: tuple[int, ...] = ()) -> Response:
        """One request with auth, retries and redirects; raises RegistryError unless status in ok+allow.

        ``body`` is bytes or a callable opening a fresh stream (so a retry can resend it).
        The response body must be read or closed by the caller.
        """
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        attempt = 0
        auth_tries = 0
        redirects = 0
        send_auth = True
        while True:
            hdrs = dict(headers or {})
            if send_auth:
                auth = self._auth_header(scope)
                if auth:
                    hdrs["Authorization"] = auth
            try:
                resp = self._send(method, url, hdrs, body)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(url)
                if isinstance(exc, ssl.SSLError):
                    if self.may_fall_back and exc.reason in _NOT_TLS and self._is_registry(url, "https"):
                        self._scheme = "http"
                        url = "http" + url[len("https"):]
                        continue
                    if not isinstance(exc, ssl.SSLEOFError):
                        raise self._tls_error(exc, step, urllib.parse.urlsplit(url).netloc) from None
                attempt += 1
                if attempt > self.retries:
                    raise RegistryError(f"{step}: cannot reach {self.registry}: {exc}",
                                        hint="check the registry address, network and proxy; "
                                             "for a plain-HTTP registry add it to MLPACK_INSECURE_REGISTRIES",
                                        registry=self.registry, step=step) from None
                self.sleep(min(self.backoff_s * 2 ** (attempt - 1), 8.0))
                continue
            if self._scheme is None and self._is_registry(url, "https"):
                self._scheme = "https"
            if resp.status in ok or resp.status in allow:
                return resp
            text = _drain(resp)
            if resp.status == 401 and auth_tries < 2 and send_auth:
                auth_tries += 1
                if self._answer(resp.header("WWW-Authenticate") or "", scope, step):
                    continue
            if resp.status in (301, 302, 303, 307, 308) and redirects < 5 and resp.header("Location"):
                redirects += 1
                url = self._redirect(url, resp.header("Location") or "", step)
                # Our token stays with the registry itself, never with another host.
                send_auth = urllib.parse.urlsplit(url)[:2] == urllib.parse.urlsplit(self.base)[:2]
                if resp.status == 303:
                    method, body = "GET", None
                continue
            if resp.status in _RETRY_STATUS and attempt < self.retries:
                attempt += 1
                self.sleep(min(self.backoff_s * 2 ** (attempt - 1), 8.0))
                continue
            raise _status_error(self.registry, step, method, url, resp.status, text)

    def _is_registry(self, url: str, scheme: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme == scheme and parts.netloc == self.registry

    def _tls_error(self, exc: ssl.SSLError, step: str, host: str) -> RegistryError:
        """A TLS failure with ``host`` (the registry, or a host it redirected to), with what to do about it."""
        host = host.rsplit("@", 1)[-1]
        if isinstance(exc, ssl.SSLCertVerificationError):
            what = f"the TLS certificate of {host} is not trusted: {exc.verify_message or exc.reason}"
            hint = self.trust.hint(host)
        elif "CERTIFICATE" in str(exc.reason):
            what = f"{host} refused the TLS connection ({exc.reason}): it wants a client certificate"
            hint = f"put client.cert and client.key (PEM) in {self.trust.hint_dir(host)}/, Docker's certs.d layout"
        else:
            what = f"TLS with {host} failed: {exc.reason or exc}"
            hint = ("if the registry speaks plain HTTP, add it to MLPACK_INSECURE_REGISTRIES; "
                    "else " + self.trust.hint(host))
        return RegistryError(f"{step}: {what}", hint=hint, registry=self.registry, step=step)

    def _redirect(self, url: str, location: str, step: str) -> str:
        """The absolute URL a redirect points at, if it may be followed; else a RegistryError."""
        target = urllib.parse.urljoin(url, location)
        parts = urllib.parse.urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"{step}: {self.registry} redirected to {target!r}, which is not an http(s) URL",
                                hint="only http and https redirects are followed; the registry or a proxy in "
                                     "between is misconfigured or hostile", registry=self.registry, step=step)
        if parts.scheme == "http" and not self._plain_ok(parts.netloc):
            raise RegistryError(f"{step}: {self.registry} redirected to plain-HTTP {target}",
                                hint="refusing to continue over unencrypted HTTP; if that host is meant to be "
                                     "plain HTTP, add it to MLPACK_INSECURE_REGISTRIES",
                                registry=self.registry, step=step)
        return target

    def _plain_ok(self, netloc: str) -> bool:
        host = netloc.rsplit("@", 1)[-1]
        return is_loopback(host) or host in self.insecure_hosts or (self.insecure and host == self.registry)

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any) -> Response:
        parts = urllib.parse.urlsplit(url)
        conn = self._conn(parts.scheme, parts.netloc)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        stream = None
        if callable(body):
            stream = body()
            payload: Any = stream
        else:
            payload = body
        if payload is not None and "Content-Length" not in headers:
            if isinstance(payload, (bytes, bytearray)):
                headers["Content-Length"] = str(len(payload))
        if payload is None and method in ("PUT", "POST", "PATCH"):
            headers.setdefault("Content-Length", "0")
        try:
            conn.request(method, path, body=payload, headers=headers)
            raw = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        finally:
            if stream is not None:
                stream.close()
        return Response(raw.status, raw.headers, raw, url, stall_s=self.stall_s, stall_min_bytes=self.stall_min_bytes)

    def _drop(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        conn = self._conns.pop((parts.scheme, parts.netloc), None)
        if conn is not None:
            conn.close()

    def _auth_header(self, scope: str) -> str | None:
        if scope in self._tokens:
            return "Bearer " + self._tokens[scope]
        if self._basic and self.credentials:
            return self.credentials.basic()
        return None

    def _answer(self, challenge: str, scope: str, step: str) -> bool:
        kind, params = parse_challenge(challenge)
        if kind == "basic":
            if self.credentials is None or self._basic:
                return False
            self._basic = True
            return True
        if kind != "bearer" or "realm" not in params:
            return False
        query = {"service": params.get("service", "")}
        if scope or params.get("scope"):
            query["scope"] = scope or params["scope"]
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": self.credentials.basic()} if self.credentials else {}
        realm = urllib.parse.urlsplit(url)
        if realm.scheme != "https" and not is_loopback(realm.netloc) and not self.insecure:
            raise RegistryError(f"{step}: {self.registry} wants a token from a plain-HTTP realm {params['realm']}",
                                hint="refusing to send credentials in clear text", registry=self.registry, step=step)
        for attempt in range(self.retries + 1):
            try:
                resp = self._send("GET", url, headers, None)
                data = resp.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._drop(url)
                if attempt == self.retries:
                    raise RegistryError(f"{step}: cannot get a token from {params['realm']}: {exc}",
                                        registry=self.registry, step=step) from None
                self.sleep(min(self.backoff_s * 2 ** attempt, 8.0))
        if resp.status != 200:
            raise RegistryError(f"{step}: the token server {params['realm']} answered {resp.status}",
                                hint="check your login (docker login writes ~/.docker/config.json)",
                                registry=self.registry, step=step, status=resp.status)
        import json

        doc = json.loads(data or b"{}")
        token = doc.get("token") or doc.get("access_token")
        if not token:
            return False
        self._tokens[scope] = token
        return True


def _drain(resp: Response) -> str:
    try:
        return resp.read(65536).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        resp.close()


def _status_error(registry: str, step: str, method: str, url: str, status: int, text: str) -> RegistryError:
    hints = {
        401: "log in (docker login writes ~/.docker/config.json) or check MLPACK/DOCKER_CONFIG",
        403: "your credentials do not allow this; check the repository name and your access",
        404: "check the image name and tag",
    }
    if status == 400 and "HTTPS server" in text:
        hints[400] = "the registry speaks HTTPS: remove its http:// prefix (mirrors) so mlpack uses TLS"
    return RegistryError(f"{step}: {method} {url} answered {status}: {text.strip()[:500]}",
                         hint=hints.get(status, "retry later or check the registry's logs"),
                         registry=registry, step=step, status=status)


