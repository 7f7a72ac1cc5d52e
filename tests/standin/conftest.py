"""Fixtures for the stand-in tests: a fixed `now`, servers, and a small HTTP helper."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests

from klaviyo_standin import DEFAULT_API_KEY, StandinServer, StandinSettings

NOW = datetime(2026, 11, 28, 10, 30)
HEADERS = {
    "Authorization": f"Klaviyo-API-Key {DEFAULT_API_KEY}",
    "revision": "2026-10-15",
    "Accept": "application/vnd.api+json",
}
SERIES = "/api/segment-series-reports"
VALUES = "/api/segment-values-reports"


def report_body(
    kind="series", statistics=None, timeframe=None, interval="daily", filter=None, **extra
):
    attrs = {
        "statistics": statistics
        or ["total_members", "members_added", "members_removed", "net_members_changed"],
        "timeframe": timeframe or {"key": "last_7_days"},
    }
    if kind == "series" and interval is not None:
        attrs["interval"] = interval
    if filter is not None:
        attrs["filter"] = filter
    attrs.update(extra)
    return {"data": {"type": f"segment-{kind}-report", "attributes": attrs}}


def post(server, path, body, headers=None, timeout=10):
    return requests.post(server.url + path, json=body, headers=headers or HEADERS, timeout=timeout)


def get(server, path, params=None, headers=None):
    return requests.get(server.url + path, params=params, headers=headers or HEADERS, timeout=10)


def settings(**overrides):
    values = {"now": NOW, "rate_limits_enabled": False}
    values.update(overrides)
    return StandinSettings(**values)


@pytest.fixture
def server():
    with StandinServer(settings()) as srv:
        yield srv


@pytest.fixture
def ny_server():
    with StandinServer(settings(timezone="America/New_York")) as srv:
        yield srv
