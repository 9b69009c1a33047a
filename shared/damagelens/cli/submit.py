"""`damagelens submit`: send photos to a running DamageLens server (one photo → a job, several →
an inspection), optionally wait and download the results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def submit(
    photos: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="one photo (a job) or several (an inspection)"),
    server: str = typer.Option("http://127.0.0.1:8000", "--server", "-s", help="gateway base URL"),
    api_key: str = typer.Option(None, "--api-key", envvar="DAMAGELENS_API_KEY", help="API key, when the gateway requires one"),
    model: str = typer.Option(None, "--model", "-m", help="fast | accurate | registry name"),
    reference: str = typer.Option(None, help="your claim or vehicle id (inspections)"),
    wait: bool = typer.Option(False, "--wait", "-w", help="wait for the results (SSE, polling as fallback)"),
    out: Path = typer.Option(None, "--out", "-o", help="with --wait: folder for images (and the inspection report)"),
    timeout: float = typer.Option(900.0, help="seconds to wait at most"),
) -> None:
    """Print the accepted (or, with --wait, the finished) document as JSON. Exit codes: 0 succeeded
    (or accepted), 1 finished but not succeeded, 2 refused by the API, 3 gave up waiting or lost the
    server (the job may still run: its id is on stderr)."""
    import httpx

    from damagelens.client import DamageLensClient, DamageLensError

    try:
        with DamageLensClient(server, api_key or os.environ.get("DAMAGELENS_API_KEY")) as client:
            if len(photos) == 1:
                accepted = client.submit(photos[0], model=model)
                kind = "job"
            else:
                accepted = client.submit_inspection(photos, model=model, reference=reference)
                kind = "inspection"
            if not wait:
                typer.echo(accepted.model_dump_json(indent=2))
                return
            typer.echo(json.dumps({"accepted": kind, "id": accepted.id}), err=True)  # kept if the wait fails
            done = client.wait(accepted.id, kind=kind, timeout=timeout)
            typer.echo(done.model_dump_json(indent=2))
            if out is not None:
                jobs = [done] if kind == "job" else [p.job for p in done.photos if p.job is not None]
                files = [str(p) for job in jobs for p in client.download_artifacts(job, out)]
                if kind == "inspection":
                    report = out / f"inspection-{done.id}.html"
                    report.write_bytes(client.report(done.id))
                    files.append(str(report))
                typer.echo(json.dumps({"files": files}), err=True)
            if done.status.value != "succeeded":
                raise typer.Exit(1)
    except DamageLensError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except (TimeoutError, httpx.HTTPError) as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(3) from None


def register(app: typer.Typer) -> None:
    app.command()(submit)
