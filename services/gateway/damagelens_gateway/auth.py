"""Who is calling: an API key from `Authorization: Bearer`, or nobody when `DAMAGELENS_AUTH=off`.

A job or inspection belongs to the key that made it; to any other key it does not exist (404),
so ids cannot be probed across teams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from damagelens.apikeys import ApiKey, KeyStore
from damagelens_gateway.errors import ApiError

# The web UI also keeps its key in this session cookie, because <img> and EventSource cannot send
# headers; it is honoured for reads only, so a cross-site form can never submit or cancel with it.
KEY_COOKIE = "damagelens_api_key"
SAFE_METHODS = frozenset({"GET", "HEAD"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `damagelens keys create`; required when the gateway runs with DAMAGELENS_AUTH=on.",
)


@dataclass(frozen=True)
class Caller:
    key: ApiKey | None  # None: auth is off, everything is visible to everyone

    @property
    def owner(self) -> str | None:
        return self.key.id if self.key else None

    @property
    def webhook_secret(self) -> str | None:
        return self.key.webhook_secret if self.key else None

    def may_see(self, owner: str | None) -> bool:
        return self.key is None or owner == self.key.id


def _caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    state = request.app.state
    if state.settings.auth == "off":
        return Caller(None)
    challenge = {"WWW-Authenticate": 'Bearer realm="damagelens"'}
    token = credentials.credentials if credentials is not None and credentials.scheme.lower() == "bearer" else None
    if token is None and request.method in SAFE_METHODS:
        token = request.cookies.get(KEY_COOKIE)
    if not token:
        raise ApiError(401, "unauthorized", "This gateway needs an API key: send `Authorization: Bearer <key>`.", challenge)
    key = KeyStore(state.jobs.client).lookup(token)
    if key is None:
        raise ApiError(401, "unauthorized", "The API key is unknown or revoked.", challenge)
    return Caller(key)


CallerDep = Annotated[Caller, Depends(_caller)]
