"""Bounds on request bodies, enforced before anything parses them (ASGI middleware).

Size: a body announced larger than the limit (``Content-Length``) is answered 413 without
being read; a body sent without a length (chunked) is counted as it arrives and refused
once it passes the limit. Depth: a body whose arrays and objects nest deeper than the
bound is answered 400, found by a vectorised scan of each chunk as it arrives (brackets
inside JSON strings do not count), so no parser ever recurses into it. Either way the
answer is the one error shape (``{error, message}``), the event loop never holds more than
the limit of one request, and the route never sees the refused body: the app is told
the client went away, so nothing a refused request asked for is done.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np

__all__ = ["BodyLimit", "JsonNesting"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


class JsonNesting:
    """The deepest nesting of JSON arrays and objects in a body fed in chunks.

    Brackets inside strings do not count; a quote is a string's end unless an odd run of
    backslashes comes before it (RFC 8259 §7). Text that is not JSON gets some depth, never
    an error: the parser judges it later. Cost: a few numpy passes over each chunk.
    """

    def __init__(self) -> None:
        self.deepest = 0
        self._depth = 0  # at the end of what was fed
        self._inside = False  # inside a string at the end of what was fed
        self._backslashes = 0  # the run of backslashes that ended what was fed

    def feed(self, chunk: bytes) -> int:
        """Scan the next chunk; the deepest nesting so far."""
        if not chunk:
            return self.deepest
        b = np.frombuffer(chunk, dtype=np.uint8)
        at = np.arange(len(b), dtype=np.int64)
        # The last byte at or before i that is not a backslash (-1 - carry: none yet).
        last = np.maximum.accumulate(np.where(b == _BACKSLASH, -1 - self._backslashes, at))
        run_before = np.empty(len(b), dtype=np.int64)  # backslashes just before byte i
        run_before[0] = self._backslashes
        run_before[1:] = at[:-1] - last[:-1]
        quotes = (b == _QUOTE) & (run_before % 2 == 0)
        flips = np.cumsum(quotes, dtype=np.int64) + int(self._inside)
        outside = flips % 2 == 0
        levels = np.cumsum(np.where(outside, _OPEN[b], 0), dtype=np.int64) + self._depth
        self.deepest = max(self.deepest, int(levels.max()))
        self._depth = int(levels[-1])
        self._inside = not bool(outside[-1])
        self._backslashes = int(len(b) - 1 - last[-1])
        return self.deepest


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes (413) or nesting deeper than
    ``depth`` arrays and objects (400)."""

    def __init__(self, app: ASGIApp, *, limit: int, depth: int) -> None:
        self.app = app
        self.limit = limit
        self.depth = depth

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
            await self._refuse(send, 413, f"the request body is larger than {self.limit} bytes")
            return
        received = opened = 0
        unscanned: list[bytes] = []  # chunks not scanned yet: too few brackets to matter
        nesting = JsonNesting()
        refusal: tuple[int, str] | None = None
        answered = False

        def judge(chunk: bytes) -> tuple[int, str] | None:
            nonlocal received, opened
            received += len(chunk)
            if received > self.limit:
                return 413, f"the request body is larger than {self.limit} bytes"
            # Scan only once the body holds more openers than the bound: until then no
            # nesting can pass it (a usual body holds two), and the scan costs nothing.
            opened += chunk.count(b"[") + chunk.count(b"{")
            unscanned.append(chunk)
            if opened > self.depth:
                deepest = max(nesting.feed(c) for c in unscanned)
                unscanned.clear()
                if deepest > self.depth:
                    return 400, f"the request body nests deeper than {self.depth} levels"
            return None

        async def counted() -> Message:
            nonlocal refusal
            if refusal is None:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                refusal = judge(message.get("body", b""))
                if refusal is None:
                    return message
            # The app hears that the client left: it never parses, nor acts on, a body
            # it did not get whole.
            return {"type": "http.disconnect"}

        async def answer(message: Message) -> None:
            # Whatever the app makes of a refused body, the client hears the refusal.
            nonlocal answered
            if refusal is None:
                await send(message)
            elif not answered:
                answered = True
                await self._refuse(send, *refusal)

        await self.app(scope, counted, answer)

    async def _refuse(self, send: Send, status: int, message: str) -> None:
        body = json.dumps({"error": "invalid_request", "message": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
