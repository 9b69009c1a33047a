"""Domain errors → HTTP: one handler so every error body has the same shape."""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from damagelens.imaging import ImageError
from damagelens.inspections import InspectionNotFound
from damagelens.jobs import JobNotFound
from damagelens.registry import UnknownModelError
from damagelens.storage import StorageError

log = logging.getLogger(__name__)


IMAGE_ERROR_STATUS: dict[str, int] = {
    "empty_upload": 400,
    "unsupported_media_type": 415,
    "invalid_image": 422,
    "image_too_large": 422,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(ImageError)
    async def _image(_: Request, exc: ImageError) -> JSONResponse:
        return error_response(IMAGE_ERROR_STATUS.get(exc.code, 422), exc.code, exc.message)

    @app.exception_handler(UnknownModelError)
    async def _model(_: Request, exc: UnknownModelError) -> JSONResponse:
        return error_response(422, "unknown_model", str(exc), valid=exc.valid)

    @app.exception_handler(JobNotFound)
    async def _job(_: Request, exc: JobNotFound) -> JSONResponse:
        return error_response(404, "job_not_found", f"No job with id {exc.args[0]!r} (unknown or expired).")

    @app.exception_handler(InspectionNotFound)
    async def _inspection(_: Request, exc: InspectionNotFound) -> JSONResponse:
        return error_response(404, "inspection_not_found", f"No inspection with id {exc.args[0]!r} (unknown or expired).")

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    async def _redis(_: Request, exc: redis.RedisError) -> JSONResponse:
        log.error("redis unavailable", extra={"error": str(exc)})
        return error_response(
            503, "service_unavailable", "The job store (Redis) is unreachable; nothing was queued. Retry shortly.", {"Retry-After": "5"}
        )

    @app.exception_handler(OperationalError)
    async def _broker(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("broker unavailable", extra={"error": str(exc)})
        return error_response(
            503, "service_unavailable", "The task queue is unreachable; the job was not queued. Retry shortly.", {"Retry-After": "5"}
        )

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        log.error("storage unavailable", extra={"error": str(exc)})
        return error_response(
            503, "service_unavailable", "Object storage is unreachable; nothing was queued. Retry shortly.", {"Retry-After": "5"}
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        missing = [".".join(str(p) for p in e["loc"][1:]) for e in exc.errors() if e.get("type") == "missing"]
        message = f"Missing field(s): {', '.join(missing)}." if missing else "The request is invalid."
        return error_response(422, "invalid_request", message, details=[{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))
