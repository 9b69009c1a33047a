"""`/v1/models`: what the registry serves, plus the upload limits clients should check first."""

from __future__ import annotations

from fastapi import APIRouter

from damagelens.imaging import ACCEPTED_FORMATS
from damagelens.schemas import Limits, ModelsResponse
from damagelens_gateway.deps import RegistryDep, SettingsDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelsResponse, operation_id="models-list")
def list_models(registry: RegistryDep, settings: SettingsDep) -> ModelsResponse:
    return ModelsResponse(
        default=registry.get(settings.default_model).name,
        limits=Limits(
            max_upload_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_pixels,
            accepted_types=sorted(set(ACCEPTED_FORMATS.values())),
        ),
        models=[entry.public() for entry in registry.list()],
    )
