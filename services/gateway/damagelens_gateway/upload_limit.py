"""Refuse oversized uploads from their Content-Length, before the multipart body is read and spooled."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from damagelens_gateway.errors import error_response

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and the small form fields around the file


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
        if scope["type"] == "http" and scope["method"] == "POST":
            length = dict(scope["headers"]).get(b"content-length")
            allowed = self._allowed(scope["path"])
            if length is not None and length.isdigit() and int(length) > allowed + MULTIPART_OVERHEAD:
                message = f"The request is {int(length):,} bytes; uploads are limited to {allowed:,} bytes."
                await error_response(413, "upload_too_large", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
