from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi import FastAPI

from app.api.deps import get_settings_dep
from app.core.config import Settings
from app.webhooks.service import WebhookConfig
from app.webhooks.targets import TargetPolicy
from tests.webhooks.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    endpoint = Receiver()
    await endpoint.start()
    try:
        yield endpoint
    finally:
        await endpoint.stop()


@pytest.fixture
def config(settings: Settings) -> WebhookConfig:
    """Loopback allowed (the receiver is there), short timeouts and retries."""
    return WebhookConfig(
        secret_key=settings.resolved_secret_key(),
        policy=TargetPolicy(allow_private=True),
        timeout_seconds=0.5,
        retry_seconds=60,
    )


@pytest.fixture
def private_allowed(app: FastAPI, settings: Settings) -> Iterator[None]:
    """The API with TICKETRY_WEBHOOK_ALLOW_PRIVATE=true, for webhooks to the receiver."""
    allowed = settings.model_copy(update={"webhook_allow_private": True})
    app.dependency_overrides[get_settings_dep] = lambda: allowed
    yield None
    app.dependency_overrides.pop(get_settings_dep, None)
