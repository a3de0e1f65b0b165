"""The ceiling: a raw ASGI app on the same HTTP stack (uvicorn + uvloop + httptools)
that reads the request body and answers a fixed JSON document, with no model,
no parsing and no framework. No server answering a model can be faster on this
stack; the benchmark reports mlpack's throughput as a fraction of it.
Run: ``uvicorn bench.server.ceiling_app:app``.
"""

from __future__ import annotations

ANSWER = b'{"outputs":{"label":[0],"probabilities":[[0.97,0.03,0.0]]}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # read the whole body, as any real endpoint must
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
