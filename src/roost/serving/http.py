"""HTTP plumbing for Roost's servers: request bodies bounded before anything reads them, and read by blocking code.

:class:`BodyLimit` answers 413-like errors for a ``Content-Length`` above the
limit without reading a byte, and ends a body sent without a length (chunked) as
soon as it grows past the limit, so an unauthenticated client cannot make the
server hold more than the limit in memory. The answer's shape is the caller's
(AWS's error JSON for the API, ``{"error": ...}`` for the serving container).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from starlette.responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: ``limit_for(path)`` bytes at most per request body; ``reject(limit, size)`` answers beyond.

    ``size`` is the declared ``Content-Length``, or None when the body grew past the limit while being read.
    """

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str], int], reject: Callable[[str, int, int | None], Response]
    ) -> None:
        self.app, self.limit_for, self.reject = app, limit_for, reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = self.limit_for(path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.reject(path, limit, declared)(scope, receive, send)
            return
        received = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self.reject(path, limit, None)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def blocking_chunks(stream: AsyncIterator[bytes], gather: int = 1024 * 1024) -> Iterator[bytes]:
    """A request body as blocking code in a worker thread reads it (the store's writes run off the event loop):
    each step fetches from the event loop at least ``gather`` bytes, since the server hands the body over 64 KiB at
    a time and the trips would cost more than the bytes. Call it from a thread started by anyio
    (``run_in_threadpool``)."""
    import anyio

    async def next_piece() -> bytes:
        pieces, size = [], 0
        while size < gather:
            try:
                piece = await stream.__anext__()
            except StopAsyncIteration:
                break
            pieces.append(piece)
            size += len(piece)
        return b"".join(pieces)

    while piece := anyio.from_thread.run(next_piece):
        yield piece
