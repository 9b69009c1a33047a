"""Refuse oversized uploads before the multipart body is spooled to disk: from the Content-Length
when there is one, else (chunked transfer) by counting the body as it arrives."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from damagelens_gateway.errors import error_response

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the small form fields around the file


class _BodyTooLarge(Exception):
    pass


class UploadLimitMiddleware:
    def __init__(self, app: ASGIApp, max_upload_bytes: int, path_limits: dict[str, int] | None = None):
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.path_limits = path_limits or {}  # batch endpoints take several photos in one body

    def _allowed(self, path: str) -> int:
        for prefix, limit in self.path_limits.items():
            if path == prefix or path.startswith(prefix + "/"):
                return limit
        return self.max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) > allowed + MULTIPART_OVERHEAD:
                message = f"The request is {int(length):,} bytes; uploads are limited to {allowed:,} bytes."
                await error_response(413, "upload_too_large", message)(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server never reads past a declared length
            return
        await self._counted(scope, receive, send, allowed)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, allowed: int) -> None:
        """No Content-Length: stop reading at the limit. The form parser turns the error into its own
        400, so whatever the app answers then is replaced by the 413."""
        limit = allowed + MULTIPART_OVERHEAD
        too_large = error_response(413, "upload_too_large", f"Uploads are limited to {allowed:,} bytes.")
        received = 0
        exceeded = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge(received)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replaced
            if not exceeded:
                await send(message)
            elif not replaced and message["type"] == "http.response.start":
                replaced = True
                await too_large(scope, receive, send)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not replaced:
                await too_large(scope, receive, send)
