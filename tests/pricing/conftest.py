"""Pricing tests drive every recompute themselves, so no periodic job may run one between
their steps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from aiqleads.app import create_app
from aiqleads.kit.clock import FrozenClock
from aiqleads.settings import Settings


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[FastAPI]:
    app = create_app(settings, clock, run_scheduler=False)
    async with LifespanManager(app):
        yield app
