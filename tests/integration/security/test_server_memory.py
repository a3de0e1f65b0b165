"""Finding 7 in a real container: 32 concurrent 7.9 MB bodies against the serving image under --memory 512Mi.

Every body was read, decoded and answered at once, and each answer (about
20 MB of JSON for 360,000 rows) waited in the server for its client: with
the budget lifted (MLPACK_MAX_INFLIGHT_BYTES=2 GiB) this test's clients see
the server killed mid-answer. With the budget derived from the cgroup memory
limit (32 MiB here: four such bodies at a time) the others wait their turn:
every request is answered 200, the container is not OOM-killed, and the
server's 5xx counter stays 0.
"""

from __future__ import annotations

import http.client
import re
import threading
import urllib.request

import pytest

from mlpack.runtime import run
from mlpack.types import Limits

pytestmark = [pytest.mark.integration, pytest.mark.runtime, pytest.mark.build, pytest.mark.slow]

CLIENTS = 32
ROW = "[5.1, 3.5, 1.4, 0.2]"


def _send(host: str, port: int, body: bytes) -> http.client.HTTPConnection | str:
    conn = http.client.HTTPConnection(host, port, timeout=600)
    try:
        conn.request("POST", "/predict", body=body, headers={"content-type": "application/json"})
    except OSError as e:  # the connection died: what an OOM kill looks like from outside
        return repr(e)
    return conn


def _status(conn: http.client.HTTPConnection | str) -> int | str:
    if isinstance(conn, str):
        return conn
    try:
        with conn.getresponse() as r:
            r.read()
            return r.status
    except (OSError, http.client.HTTPException) as e:
        return repr(e)
    finally:
        conn.close()


def test_sixteen_bodies_under_the_limit_fit_in_512mi(serving_image, run_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A generous wait: this test is about memory, so no request may give up for want of time.
    c = run(serving_image.ref, limits=Limits(memory="512Mi"), env=["MLPACK_BODY_WAIT_S=600"],
            settings=run_settings, name=f"security-memory-{tmp_path.name[-8:]}")
    try:
        assert c.wait_healthy(timeout=120) == "healthy", c.logs(tail=50)
        body = ("{\"inputs\": [" + ", ".join([ROW] * (7_900_000 // (len(ROW) + 2))) + "]}").encode()
        assert 7_800_000 < len(body) < 8 * 1024 * 1024
        host, port = c.url.removeprefix("http://").split(":")
        # All the bodies go out (each client sends from its own thread) and only then are the answers
        # read: every response (about 20 MB of JSON each) waits in the server until its client reads.
        sent: list = [None] * CLIENTS
        senders = [threading.Thread(target=lambda i=i: sent.__setitem__(i, _send(host, int(port), body)))
                   for i in range(CLIENTS)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        results = [_status(conn) for conn in sent]
        assert results == [200] * CLIENTS, (results, c.logs(tail=30))
        assert c.running() and not c.oom_killed
        metrics = urllib.request.urlopen(c.url + "/metrics", timeout=30).read().decode()
        assert not re.search(r'^mlpack_requests_total\{[^}]*status="5\d\d"', metrics, re.M), metrics
    finally:
        c.remove(force=True)
