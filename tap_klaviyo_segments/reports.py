"""Klaviyo segment report bodies and responses: what we send, and what we accept back.

Pure functions, so the exact request and every way a response can be malformed are tested
without HTTP. Parsing is strict about what we rely on (ids, lengths, numbers) and lenient
about the rest (unknown fields may appear in any revision).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any


class MalformedReportError(ValueError):
    """A response that cannot be turned into rows without guessing."""


def id_filter(segment_ids: Sequence[str]) -> str:
    """Klaviyo's filter text for a batch: ``equals`` for one id, ``any`` for several."""
    if len(segment_ids) == 1:
        return f'equals(segment_id,"{segment_ids[0]}")'
    return f"any(segment_id,{json.dumps(list(segment_ids), separators=(',', ':'))})"


def report_body(
    report_type: str,
    *,
    statistics: Sequence[str],
    timeframe: dict[str, str],
    segment_ids: Sequence[str] | None,
    interval: str | None = None,
) -> dict[str, Any]:
    """The JSON:API body of a segment values or series report request.

    ``segment_ids=None`` sends no filter: Klaviyo answers for every segment of the account.
    """
    attributes: dict[str, Any] = {"statistics": list(statistics), "timeframe": timeframe}
    if segment_ids is not None:
        attributes["filter"] = id_filter(segment_ids)
    if interval is not None:
        attributes["interval"] = interval
    return {"data": {"type": report_type, "attributes": attributes}}


@dataclass
class SeriesReport:
    """A parsed series report: bucket labels, and per segment a list per statistic."""

    date_times: list[str]
    results: dict[str, dict[str, list[int]]]
    unexpected_ids: list[str] = field(default_factory=list)
    #: Requested segments the response said nothing about (no rows; their bookmarks must stay).
    missing_ids: list[str] = field(default_factory=list)


@dataclass
class ValuesReport:
    """A parsed values report: per segment, one number per statistic."""

    results: dict[str, dict[str, int]]
    unexpected_ids: list[str] = field(default_factory=list)
    #: Requested segments the response said nothing about.
    missing_ids: list[str] = field(default_factory=list)


def parse_series_report(
    payload: Any, *, requested_ids: Sequence[str], statistics: Sequence[str]
) -> SeriesReport:
    """Validate and unpack a series response; statistics arrays must match ``date_times``."""
    attributes = _attributes(payload)
    date_times = attributes.get("date_times")
    if not isinstance(date_times, list) or not all(isinstance(d, str) for d in date_times):
        raise MalformedReportError("data.attributes.date_times is missing or not a list of strings")
    _check_date_times(date_times)
    results: dict[str, dict[str, list[int]]] = {}
    wanted, unexpected = _wanted_results(attributes, requested_ids)
    for segment_id, stats in wanted:
        series: dict[str, list[int]] = {}
        for name in statistics:
            values = _statistic(stats, name, segment_id)
            if not isinstance(values, list) or len(values) != len(date_times):
                got = len(values) if isinstance(values, list) else type(values).__name__
                msg = (
                    f"statistic {name} of segment {segment_id} has {got} values "
                    f"for {len(date_times)} date_times"
                )
                raise MalformedReportError(msg)
            # Fast path: plain ints (the usual answer) need no per-value conversion.
            if all(type(v) is int for v in values):
                if values and name in NEVER_NEGATIVE and min(values) < 0:
                    _negative(name, segment_id, min(values))
                series[name] = values
            else:
                series[name] = [_count(v, name, segment_id) for v in values]
        results[segment_id] = series
    return SeriesReport(
        date_times=date_times,
        results=results,
        unexpected_ids=unexpected,
        missing_ids=_missing(requested_ids, results),
    )


def parse_values_report(
    payload: Any, *, requested_ids: Sequence[str], statistics: Sequence[str]
) -> ValuesReport:
    """Validate and unpack a values response."""
    wanted, unexpected = _wanted_results(_attributes(payload), requested_ids)
    results = {
        segment_id: {
            name: _count(_statistic(stats, name, segment_id), name, segment_id)
            for name in statistics
        }
        for segment_id, stats in wanted
    }
    return ValuesReport(
        results=results,
        unexpected_ids=unexpected,
        missing_ids=_missing(requested_ids, results),
    )


def _wanted_results(
    attributes: dict[str, Any], requested_ids: Sequence[str]
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """The results of the requested segments, and the ids Klaviyo added that were not asked for."""
    wanted_ids = set(requested_ids)
    wanted: list[tuple[str, dict[str, Any]]] = []
    unexpected: list[str] = []
    for segment_id, stats in _results(attributes):
        if segment_id in wanted_ids:
            wanted.append((segment_id, stats))
        else:
            unexpected.append(segment_id)
    return wanted, unexpected


def _missing(requested_ids: Sequence[str], results: dict[str, Any]) -> list[str]:
    return [sid for sid in dict.fromkeys(requested_ids) if sid not in results]


def _statistic(stats: dict[str, Any], name: str, segment_id: str) -> Any:
    """A requested statistic must be there: a row without it would be written as final."""
    value = stats.get(name)
    if value is None:
        state = "null" if name in stats else "missing"
        raise MalformedReportError(f"statistic {name} of segment {segment_id} is {state}")
    return value


def _check_date_times(date_times: list[str]) -> None:
    """Bucket labels must be ISO 8601 date-times, in order, each once (rows are keyed by them)."""
    moments = []
    for label in date_times:
        try:
            moments.append(datetime.fromisoformat(label.replace("Z", "+00:00")))
        except ValueError:
            raise MalformedReportError(
                f"data.attributes.date_times holds {label[:40]!r}, not an ISO 8601 date-time"
            ) from None
    if len({moment.tzinfo is None for moment in moments}) > 1:
        raise MalformedReportError(
            "data.attributes.date_times mixes labels with and without offset"
        )
    for earlier, later in pairwise(moments):
        if not earlier < later:
            raise MalformedReportError(
                "data.attributes.date_times are not in increasing order without repeats "
                f"({earlier.isoformat()} then {later.isoformat()})"
            )


def _attributes(payload: Any) -> dict[str, Any]:
    data = payload.get("data") if isinstance(payload, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attributes, dict):
        raise MalformedReportError("the response has no data.attributes object")
    return attributes


def _results(attributes: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    results = attributes.get("results")
    if not isinstance(results, list):
        raise MalformedReportError("data.attributes.results is missing or not a list")
    parsed: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for result in results:
        groupings = result.get("groupings") if isinstance(result, dict) else None
        segment_id = groupings.get("segment_id") if isinstance(groupings, dict) else None
        stats = result.get("statistics") if isinstance(result, dict) else None
        if not isinstance(segment_id, str) or not isinstance(stats, dict):
            raise MalformedReportError("a result lacks groupings.segment_id or statistics")
        if segment_id in seen:
            raise MalformedReportError(f"segment {segment_id} appears twice in one report")
        seen.add(segment_id)
        parsed.append((segment_id, stats))
    return parsed


#: Statistics that count members, so a negative value is a broken answer (the net may be < 0).
NEVER_NEGATIVE = frozenset({"total_members", "members_added", "members_removed"})


def _negative(name: str, segment_id: str, value: int) -> None:
    raise MalformedReportError(
        f"statistic {name} of segment {segment_id} is negative ({value}): it counts members"
    )


def _count(value: Any, name: str, segment_id: str) -> int:
    """Member counts are whole numbers; Klaviyo may send them as floats (79.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedReportError(
            f"statistic {name} of segment {segment_id} is not a number: {value!r}"
        )
    if isinstance(value, float):
        if not value.is_integer():
            raise MalformedReportError(
                f"statistic {name} of segment {segment_id} is not whole: {value!r}"
            )
        value = int(value)
    number: int = value
    if number < 0 and name in NEVER_NEGATIVE:
        _negative(name, segment_id, number)
    return number
