"""Dependencies as `Annotated` aliases over `app.state`, which `create_app` fills once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from damagelens.inspections import InspectionStore
from damagelens.jobs import JobStore
from damagelens.registry import Registry
from damagelens.settings import Settings
from damagelens.storage import ObjectStore
from damagelens_gateway.dispatch import Dispatcher
from damagelens_gateway.idempotency import Idempotency
from damagelens_gateway.quotas import Admission


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> ObjectStore:
    return request.app.state.store


def _jobs(request: Request) -> JobStore:
    return request.app.state.jobs


def _registry(request: Request) -> Registry:
    return request.app.state.registry


@dataclass(frozen=True)
class Services:
    """What submitting touches; one dependency instead of eight parameters per route."""

    settings: Settings
    registry: Registry
    store: ObjectStore
    jobs: JobStore
    dispatcher: Dispatcher
    inspections: InspectionStore
    admission: Admission
    idempotency: Idempotency


def _services(request: Request) -> Services:
    state = request.app.state
    return Services(
        state.settings, state.registry, state.store, state.jobs, state.dispatcher, state.inspections, state.admission, state.idempotency
    )


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[ObjectStore, Depends(_store)]
JobsDep = Annotated[JobStore, Depends(_jobs)]
RegistryDep = Annotated[Registry, Depends(_registry)]
ServicesDep = Annotated[Services, Depends(_services)]
