"""Request bodies are bounded before anything parses them.

Rules:
- A body larger than ``max_body_bytes`` is answered 413 at once (from
  ``Content-Length`` when the client sends one, else as soon as the bytes
  read pass the limit); the rest is not read.
- A JSON body (or the JSON header of a KServe binary-extension body, the
  first ``Inference-Header-Content-Length`` bytes) nested deeper than
  :data:`~npusuite.platform.records.MAX_JSON_DEPTH` is answered 400 before
  any parser sees it, so no request can raise a RecursionError.
- Errors use the API's shape (see :mod:`npusuite.platform.serving.errors`).
- The body is handed on whole; later ``receive`` calls go to the server, so
  routes can still notice a client disconnecting.
"""

from __future__ import annotations

from npusuite.platform.errors import SchemaError
from npusuite.platform.records import check_json_shape
from npusuite.platform.serving.errors import error_body

#: Default for ``npusuite platform serve --max-body-bytes``: room for a 1M-float tensor in JSON, or 16M in binary.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


class BodyLimit:
    """Pure ASGI middleware enforcing the rules above."""

    def __init__(self, app, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def _refuse(self, send, path: str, status: int, message: str) -> None:
        body = error_body(path, status, message)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        limit = self.max_body_bytes
        too_large = f"request body is larger than the limit of {limit} bytes (--max-body-bytes)"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, path, 413, too_large)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await self._refuse(send, path, 413, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        header_length = headers.get(b"inference-header-content-length")
        json_part = body[:int(header_length)] if header_length and header_length.isdigit() else body
        try:
            check_json_shape(json_part)
        except SchemaError as exc:
            return await self._refuse(send, path, 400, str(exc))
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def read_capped_body(request, limit: int) -> bytes:
    """A route's raw body, for apps without the :class:`BodyLimit` middleware.

    Raises FastAPI's ``HTTPException(413)`` from ``Content-Length`` when the client declares more
    than ``limit`` bytes, else as soon as the bytes read pass it (the rest is not read).
    """
    from fastapi import HTTPException

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
    return bytes(body)
