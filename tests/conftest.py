"""The one stand-in the tap tests share, and the log helpers several modules use.

A module that needs another account (more segments, another seed, a canary key) overrides the
``standin_settings`` fixture; ``standin`` then serves that account for the whole module, and
every test that uses it starts with an empty request log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

import pytest

from klaviyo_standin import StandinServer, StandinSettings

NOW_LOCAL = datetime(2026, 11, 28, 10, 30)


@pytest.fixture(scope="module")
def standin_settings() -> StandinSettings:
    """Three segments, seed 11, no rate limits, clock frozen at NOW_LOCAL."""
    return StandinSettings(segment_count=3, seed=11, now=NOW_LOCAL, rate_limits_enabled=False)


@pytest.fixture(scope="module")
def standin(standin_settings: StandinSettings) -> Iterator[StandinServer]:
    """One stand-in per test module (its account built once, its log cleared per test)."""
    with StandinServer(standin_settings) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean_standin_log(request: pytest.FixtureRequest) -> None:
    """Each test's request log holds that test's calls only (tests assert on it)."""
    if "standin" in request.fixturenames:
        request.getfixturevalue("standin").clear_log()


class Logs:
    """Root log records at DEBUG, as text per level."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        outer = self

        class _Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                outer.records.append(record)

        self.handler = _Keep(logging.DEBUG)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def logs() -> Iterator[Logs]:
    captured = Logs()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(captured.handler)
    root.setLevel(logging.DEBUG)
    yield captured
    root.removeHandler(captured.handler)
    root.setLevel(previous)
