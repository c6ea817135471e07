"""A bound on request bodies, enforced before anything parses them (ASGI middleware).

A body announced larger than the limit (``Content-Length``) is answered 413 without being
read; a body sent without a length (chunked) is counted as it arrives and refused once
it passes the limit. Either way the answer is the one error shape (``{error, message}``)
and the event loop never holds more than the limit of one request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["BodyLimit"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        try:
            too_large = declared is not None and int(declared) > self.limit
        except ValueError:
            too_large = False  # the server refuses a malformed length itself
        if too_large:
            await self._refuse(send)
            return
        received = 0
        exceeded = refused = False

        async def counted() -> Message:
            nonlocal received, exceeded
            if exceeded:  # stop reading: the app sees the end of a (truncated) body
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def answered(message: Message) -> None:
            # Whatever the app makes of a truncated body, the client hears 413.
            nonlocal refused
            if not exceeded:
                await send(message)
            elif not refused:
                refused = True
                await self._refuse(send)

        await self.app(scope, counted, answered)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": "invalid_request",
                "message": f"the request body is larger than {self.limit} bytes",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
