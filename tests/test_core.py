"""singer-sdk's standard tap tests, run against the local stand-in."""

from __future__ import annotations

from datetime import datetime, timedelta

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from klaviyo_standin import StandinServer, StandinSettings
from tap_klaviyo_segments.tap import TapKlaviyoSegments
from tests.tap_runner import base_config

# One stand-in for the whole module: the factory needs the config when the class is built.
_SETTINGS = StandinSettings(segment_count=15, seed=11, rate_limits_enabled=False)
_SERVER = StandinServer(_SETTINGS).start()

_START = (datetime.now() - timedelta(days=75)).date().isoformat()

TestTapKlaviyoSegments = get_tap_test_class(
    tap_class=TapKlaviyoSegments,
    config=base_config(
        _SERVER.url,
        start_date=_START,
        series_intervals=["daily", "weekly"],
        values_timeframes=["last_7_days", "this_month"],
    ),
    suite_config=SuiteConfig(max_records_limit=None),
)


def teardown_module() -> None:
    _SERVER.stop()
