"""Property tests of the report parser (and the one timezone gap of the planner's tests).

* Any well-formed series or values response round-trips: the parsed numbers are the ones sent,
  ids not asked for are set aside, ids not answered are listed, unknown fields are ignored.
* Any corruption of a well-formed response raises MalformedReportError.
* Any JSON at all, anywhere in a response, either parses or raises MalformedReportError:
  never another exception (which would escape the client's retry and its clear message).
* For any IANA zone, each local day's bucket label, read back as the stream reads it, lands in
  exactly its own bucket of the grid.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
from datetime import date, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tap_klaviyo_segments.answers import wall_clock
from tap_klaviyo_segments.planning import BucketGrid, local_midnight
from tap_klaviyo_segments.reports import (
    MalformedReportError,
    parse_series_report,
    parse_values_report,
)
from tap_klaviyo_segments.settings import STATISTICS

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    min_size=1,
    max_size=8,
)
# Whole numbers only: a null statistic is malformed (a row without it would be final); member
# counts are never negative (a negative one is malformed), the net change may be.
counts = st.integers(0, 10**9)
nets = st.integers(-(10**9), 10**9)


def count_of(name):
    return nets if name == "net_members_changed" else counts


statistics = st.lists(st.sampled_from(STATISTICS), min_size=1, max_size=4, unique=True)
zones = st.sampled_from(sorted(available_timezones() - {"Factory", "localtime"}))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def series_case(draw):
    """A well-formed series response, plus what parsing it must give."""
    zone = ZoneInfo(draw(zones))
    first = draw(st.dates(min_value=date(2023, 6, 1), max_value=date(2027, 12, 31)))
    n = draw(st.integers(0, 20))
    step = draw(st.sampled_from([timedelta(hours=1), timedelta(days=1), timedelta(days=7)]))
    start = local_midnight(first)
    labels = [(start + i * step).replace(tzinfo=zone) for i in range(n)]
    assume(all(a < b for a, b in itertools.pairwise(labels)))
    date_times = [label.isoformat() for label in labels]
    requested = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    answered = draw(st.lists(st.sampled_from(requested), unique=True))
    extras = draw(st.lists(ids.filter(lambda i: i not in requested), max_size=2, unique=True))
    stats = draw(statistics)
    expected: dict[str, dict[str, list[int | None]]] = {}
    results = []
    for sid in answered + extras:
        sent = {name: draw(st.lists(count_of(name), min_size=n, max_size=n)) for name in stats}
        wire = {
            name: [float(v) if v is not None and draw(st.booleans()) else v for v in values]
            for name, values in sent.items()
        }
        wire["some_future_statistic"] = "whatever"
        results.append({"groupings": {"segment_id": sid, "extra": 1}, "statistics": wire})
        if sid in requested:
            expected[sid] = sent
    order = draw(st.permutations(range(len(results))))
    payload = {
        "data": {
            "type": "segment-series-report",
            "id": "r",
            "attributes": {
                "date_times": date_times,
                "results": [results[i] for i in order],
                "unknown": {"x": [1]},
            },
            "links": {"self": "https://a.klaviyo.com/x"},
        },
        "meta": {"anything": True},
    }
    return payload, requested, stats, expected, extras


@st.composite
def values_case(draw):
    requested = draw(st.lists(ids, min_size=1, max_size=6, unique=True))
    answered = draw(st.lists(st.sampled_from(requested), unique=True))
    extras = draw(st.lists(ids.filter(lambda i: i not in requested), max_size=2, unique=True))
    stats = draw(statistics)
    expected = {}
    results = []
    for sid in answered + extras:
        sent = {name: draw(count_of(name)) for name in stats}
        results.append({"groupings": {"segment_id": sid}, "statistics": {**sent, "new": 1}})
        if sid in requested:
            expected[sid] = sent
    payload = {"data": {"type": "segment-values-report", "attributes": {"results": results}}}
    return payload, requested, stats, expected, extras


@FAST
@given(series_case())
def test_well_formed_series_round_trip(case):
    payload, requested, stats, expected, extras = case
    wire = json.loads(json.dumps(payload))
    report = parse_series_report(wire, requested_ids=requested, statistics=stats)
    assert report.results == expected
    assert report.date_times == payload["data"]["attributes"]["date_times"]
    assert sorted(report.unexpected_ids) == sorted(extras)
    assert report.missing_ids == [sid for sid in requested if sid not in expected]
    for series in report.results.values():
        for values in series.values():
            assert all(type(v) is int for v in values)


@FAST
@given(values_case())
def test_well_formed_values_round_trip(case):
    payload, requested, stats, expected, extras = case
    report = parse_values_report(payload, requested_ids=requested, statistics=stats)
    assert report.results == expected
    assert sorted(report.unexpected_ids) == sorted(extras)
    assert report.missing_ids == [sid for sid in requested if sid not in expected]


# ----- corruption: each of these must be refused ----------------------------------------------


def _first_result(payload):
    return payload["data"]["attributes"]["results"][0]


def _first_stat(payload):
    stats = _first_result(payload)["statistics"]
    return next(name for name in STATISTICS if name in stats)


def _corrupt(payload, how, junk):
    attributes = payload["data"]["attributes"]
    if how == "drop-data":
        del payload["data"]
    elif how == "data-not-object":
        payload["data"] = junk if not isinstance(junk, dict) else [junk]
    elif how == "drop-attributes":
        del payload["data"]["attributes"]
    elif how == "drop-results":
        del attributes["results"]
    elif how == "results-not-list":
        attributes["results"] = junk if not isinstance(junk, list) else {"r": junk}
    elif how == "drop-date-times":
        del attributes["date_times"]
    elif how == "date-time-not-a-date":
        attributes["date_times"][0] = "not a date"
    elif how == "date-times-repeat":
        attributes["date_times"][1] = attributes["date_times"][0]
    elif how == "date-times-reversed":
        attributes["date_times"].reverse()
    elif how == "drop-groupings":
        del _first_result(payload)["groupings"]
    elif how == "segment-id-not-text":
        _first_result(payload)["groupings"]["segment_id"] = junk if not isinstance(junk, str) else 7
    elif how == "statistics-not-object":
        _first_result(payload)["statistics"] = junk if not isinstance(junk, dict) else [junk]
    elif how == "result-not-object":
        attributes["results"][0] = junk if not isinstance(junk, dict) else [junk]
    elif how == "shorter-series":
        _first_result(payload)["statistics"][_first_stat(payload)].pop()
    elif how == "longer-series":
        _first_result(payload)["statistics"][_first_stat(payload)].append(1)
    elif how == "series-not-list":
        _first_result(payload)["statistics"][_first_stat(payload)] = 5
    elif how == "count-text":
        _first_result(payload)["statistics"][_first_stat(payload)][0] = "12"
    elif how == "count-bool":
        _first_result(payload)["statistics"][_first_stat(payload)][0] = True
    elif how == "count-fraction":
        _first_result(payload)["statistics"][_first_stat(payload)][0] = 1.5
    elif how == "count-infinite":
        _first_result(payload)["statistics"][_first_stat(payload)][0] = float("inf")
    elif how == "count-null":
        _first_result(payload)["statistics"][_first_stat(payload)][0] = None
    elif how == "statistic-null":
        _first_result(payload)["statistics"][_first_stat(payload)] = None
    elif how == "statistic-missing":
        del _first_result(payload)["statistics"][_first_stat(payload)]
    elif how == "duplicate-result":
        attributes["results"].append(copy.deepcopy(_first_result(payload)))
    return payload


CORRUPTIONS = [
    "drop-data",
    "data-not-object",
    "drop-attributes",
    "drop-results",
    "results-not-list",
    "drop-date-times",
    "date-time-not-a-date",
    "date-times-repeat",
    "date-times-reversed",
    "drop-groupings",
    "segment-id-not-text",
    "statistics-not-object",
    "result-not-object",
    "shorter-series",
    "longer-series",
    "series-not-list",
    "count-text",
    "count-bool",
    "count-fraction",
    "count-infinite",
    "count-null",
    "statistic-null",
    "statistic-missing",
    "duplicate-result",
]


@FAST
@given(series_case(), st.sampled_from(CORRUPTIONS), json_values)
def test_any_corruption_of_a_series_response_is_refused(case, how, junk):
    payload, requested, stats, _expected, _ = case
    attributes = payload["data"]["attributes"]
    results = attributes["results"]
    n = len(attributes["date_times"])
    needs_rows = how in {
        "date-time-not-a-date",
        "shorter-series",
        "count-text",
        "count-bool",
        "count-fraction",
        "count-infinite",
        "count-null",
    }
    assume(n >= (2 if how.startswith("date-times") else 1 if needs_rows else 0))
    needs_result = how not in {
        "drop-data",
        "data-not-object",
        "drop-attributes",
        "drop-results",
        "results-not-list",
        "drop-date-times",
        "date-time-not-a-date",
        "date-times-repeat",
        "date-times-reversed",
    }
    if needs_result:
        assume(results)
        # Corrupt a result that is asked for (others are skipped before their values are read).
        assume(results[0]["groupings"]["segment_id"] in requested)
    payload = _corrupt(payload, how, junk)
    with pytest.raises(MalformedReportError):
        parse_series_report(payload, requested_ids=requested, statistics=stats)


def _all_paths(node, prefix=()):
    """Every node's path; of a list, only the first two items (the rest are alike)."""
    yield list(prefix)
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _all_paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node[:2]):
            yield from _all_paths(child, (*prefix, index))


@FAST
@given(st.data(), series_case(), json_values)
def test_any_json_anywhere_parses_or_raises_malformed_never_anything_else(data, case, junk):
    payload, requested, stats, _, _ = case
    path = data.draw(st.sampled_from(list(_all_paths(payload))))
    if path:
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = junk
    else:
        payload = junk
    for parse in (parse_series_report, parse_values_report):
        with contextlib.suppress(MalformedReportError):
            parse(payload, requested_ids=requested, statistics=stats)


@FAST
@given(json_values, st.lists(ids, min_size=1, max_size=3, unique=True), statistics)
def test_arbitrary_json_bodies_parse_or_raise_malformed(body, requested, stats):
    for parse in (parse_series_report, parse_values_report):
        with contextlib.suppress(MalformedReportError):
            parse(body, requested_ids=requested, statistics=stats)


# ----- timezones: each local day's label lands in its own bucket, in every zone ---------------


@settings(max_examples=300, deadline=None)
@given(
    zones,
    st.dates(min_value=date(2023, 6, 1), max_value=date(2027, 12, 31)),
    st.integers(0, 400),
    st.sampled_from(["daily", "weekly", "monthly"]),
    st.sampled_from([0, 1]),
)
def test_bucket_labels_read_back_into_their_own_bucket_in_any_zone(
    zone_name, anchor_day, offset, interval, fold
):
    """The stream reads a label's wall clock once its offset is shown to be the zone's.

    Klaviyo labels a bucket at its start, local midnight. Where a DST change skips or repeats
    midnight (e.g. America/Santiago, Asia/Beirut), the label may carry either offset: read back,
    it must pass the offset check and fall in the bucket it labels, never in the one before.
    """
    zone = ZoneInfo(zone_name)
    grid = BucketGrid(interval, local_midnight(anchor_day))
    index = offset if interval == "daily" else offset // 7 if interval == "weekly" else offset // 30
    bucket_start = grid.start(index)
    label = bucket_start.replace(tzinfo=zone, fold=fold).isoformat()
    read_back = wall_clock(label, zone)
    assert grid.index(read_back) == index, (label, read_back)
