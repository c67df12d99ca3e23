"""Litestar dependencies: what a route handler asks for by parameter name."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from app.api.cache import ClosedSessionCache
from app.api.hub import Hub
from app.api.live import Live
from app.config import Settings
from app.store import RedisClient


def _redis(state: State) -> RedisClient:
    return state.redis


def _settings(state: State) -> Settings:
    return state.settings


def _hub(state: State) -> Hub:
    return state.hub


def _live(state: State) -> Live:
    return state.live


def _closed_cache(state: State) -> ClosedSessionCache:
    return state.closed_cache


DEPENDENCIES = {
    "redis": Provide(_redis, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
    "hub": Provide(_hub, sync_to_thread=False),
    "closed_cache": Provide(_closed_cache, sync_to_thread=False),
    "live": Provide(_live, sync_to_thread=False),
}

# Handler parameter types: ``redis: RedisDep`` is filled from DEPENDENCIES by name.
RedisDep = NamedDependency[RedisClient]  # one Redis or a cluster (app.store)
SettingsDep = NamedDependency[Settings]
HubDep = NamedDependency[Hub]
ClosedCacheDep = NamedDependency[ClosedSessionCache]
LiveDep = NamedDependency[Live]
