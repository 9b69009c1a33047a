"""`damagelens keys create|list|revoke`: API keys for gateways running with DAMAGELENS_AUTH=on."""

from __future__ import annotations

import json

import typer

keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys (stored hashed in Redis).")


def _store():
    from damagelens.apikeys import KeyStore
    from damagelens.jobs.store import redis_client
    from damagelens.settings import get_settings

    return KeyStore(redis_client(get_settings().redis_url))


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="who the key is for, e.g. a team or system"),
    rate: str = typer.Option(None, help="submits per period: N/s, N/min, N/h (default: DAMAGELENS_DEFAULT_RATE_LIMIT)"),
    max_queued: int = typer.Option(None, min=1, help="unfinished jobs allowed at once (default: DAMAGELENS_DEFAULT_MAX_QUEUED)"),
) -> None:
    """Print the new key once; only its SHA-256 is stored."""
    from damagelens.apikeys import RateLimit
    from damagelens.settings import get_settings

    settings = get_settings()
    try:
        limit = RateLimit.parse(rate or settings.default_rate_limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    key, token = _store().create(name, limit, max_queued or settings.default_max_queued)
    typer.echo(f"created {key.id} ({key.name}): rate {key.rate}, max queued {key.max_queued}", err=True)
    typer.echo(f"webhook signing secret of this key: {key.webhook_secret}", err=True)
    typer.echo(token)


@keys_app.command("list")
def list_keys(as_json: bool = typer.Option(False, "--json", help="one JSON object per key")) -> None:
    """Ids, names, limits and whether revoked (never the keys themselves)."""
    for key in _store().list():
        if as_json:
            typer.echo(json.dumps({**key.model_dump(mode="json", exclude={"webhook_secret"}), "rate": str(key.rate)}))
        else:
            state = "revoked" if key.revoked else "active"
            typer.echo(f"{key.id}  {key.name}  rate {key.rate}  max queued {key.max_queued}  {state}  {key.created_at:%Y-%m-%d}")


@keys_app.command("revoke")
def revoke(id_or_name: str = typer.Argument(..., help="a key id (key_…) or a name (revokes every key of that name)")) -> None:
    """Revoked keys get 401 at once; the record stays so `keys list` shows it."""
    revoked = _store().revoke(id_or_name)
    if not revoked:
        typer.echo(f"no active key {id_or_name!r}", err=True)
        raise typer.Exit(1)
    for key in revoked:
        typer.echo(f"revoked {key.id} ({key.name})")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
