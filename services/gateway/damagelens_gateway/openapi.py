"""Error responses declared per route, so the OpenAPI document lists every code a client can get."""

from __future__ import annotations

from typing import Any

from damagelens.schemas import ErrorBody


def _error(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        out["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}
    return out


UNAUTHORIZED = _error("`unauthorized`: no or an unknown API key (only when DAMAGELENS_AUTH=on).", {"WWW-Authenticate": "Bearer"})

SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted. With an `Idempotency-Key` seen before, the first answer again.",
        "headers": {
            "Location": {"description": "the new resource", "schema": {"type": "string"}},
            "Idempotent-Replayed": {
                "description": "`true` when this is the stored answer of an earlier request",
                "schema": {"type": "string"},
            },
        },
    },
    400: _error("`missing_image`, `empty_upload`, `empty_inspection`."),
    401: UNAUTHORIZED,
    409: _error("`idempotency_in_progress`: the first request with this key is still running.", {"Retry-After": "seconds"}),
    413: _error("`upload_too_large`."),
    415: _error("`unsupported_media_type`."),
    422: _error(
        "`invalid_image`, `image_too_large`, `unknown_model`, `unknown_task`, `unknown_cam_method`, `too_many_photos`, "
        "`no_valid_photos`, `idempotency_key_reused`, `invalid_idempotency_key`, `invalid_request`."
    ),
    429: _error("`rate_limited` (the key's rate) or `too_many_queued` (the key's cap on unfinished jobs).", {"Retry-After": "seconds"}),
    503: _error("`queue_full` (back-pressure) or `service_unavailable` (Redis, broker or storage down).", {"Retry-After": "seconds"}),
}


def read_responses(noun: str) -> dict[int | str, dict[str, Any]]:
    return {401: UNAUTHORIZED, 404: _error(f"`{noun}_not_found`: unknown, expired, or another key's {noun}.")}
