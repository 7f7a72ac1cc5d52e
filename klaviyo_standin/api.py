"""Request validation and response bodies of the stand-in's endpoints (no sockets here).

Kept apart from the HTTP plumbing so each rule is a short, testable function and the server only
routes, authenticates, rate-limits and injects faults.

Choices where Klaviyo is silent: unknown (or deleted) segment ids in a report filter are omitted
from the results (no error: a filter naming only unknown ids answers 200 with ``results: []``);
results follow the filter's id order (or list order without a filter); an omitted filter reports
every segment; unknown attributes in a report body are rejected.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from klaviyo_standin.filters import Condition, FilterError, parse_filter
from klaviyo_standin.model import STATISTICS, Account
from klaviyo_standin.timeframes import INTERVALS, Alignment, TimeframeError, Window

REPORT_TYPES = {
    "/api/segment-values-reports": "segment-values-report",
    "/api/segment-series-reports": "segment-series-report",
}
MAX_FILTER_IDS = 100
PAGE_SIZE_MAX = 10
SEGMENT_FIELDS = (
    "name",
    "definition",
    "definition.condition_groups",
    "created",
    "updated",
    "is_active",
    "is_processing",
    "is_starred",
    "id",
)
_SEGMENT_FILTERS = {
    "name": {"equals", "any"},
    "id": {"equals", "any"},
    "created": {"greater-than"},
    "updated": {"greater-than"},
    "is_active": {"equals", "any"},
    "is_starred": {"equals"},
}
_SORTS = ("created", "id", "name", "updated")
_TITLES = {
    400: "Invalid input.",
    401: "Missing or invalid authorization scheme.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    429: "Request was throttled.",
    500: "A server error occurred.",
    502: "Bad gateway.",
    503: "Service unavailable.",
    504: "Gateway timeout.",
}


@dataclass
class ApiError(Exception):
    """An error response in Klaviyo's JSON:API error shape."""

    status: int
    code: str
    detail: str
    pointer: str | None = None
    parameter: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The ``{"errors": [...]}`` document."""
        source: dict[str, str] = {}
        if self.pointer is not None:
            source["pointer"] = self.pointer
        if self.parameter is not None:
            source["parameter"] = self.parameter
        error = {
            "id": str(uuid.uuid4()),
            "status": self.status,
            "code": self.code,
            "title": _TITLES.get(self.status, "Error."),
            "detail": self.detail,
            "source": source,
            "links": {},
            "meta": {},
        }
        return {"errors": [error]}


def invalid(detail: str, pointer: str | None = None, parameter: str | None = None) -> ApiError:
    """A 400 ``invalid`` error."""
    return ApiError(400, "invalid", detail, pointer=pointer, parameter=parameter)


# ----- reports ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportRequest:
    """A validated report request."""

    kind: str
    statistics: list[str]
    window: Window
    interval: str | None
    segment_ids: list[str] | None


def _object(value: object, pointer: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"'{pointer}' must be an object.", pointer)
    return value


def _statistics(attrs: Mapping[str, Any]) -> list[str]:
    pointer = "/data/attributes/statistics"
    stats = attrs.get("statistics")
    if not isinstance(stats, list) or not stats:
        raise invalid("'statistics' is required and must be a non-empty list.", pointer)
    for i, name in enumerate(stats):
        if name not in STATISTICS:
            raise invalid(f"{name!r} is not a valid statistic.", f"{pointer}/{i}")
    return list(dict.fromkeys(stats))


def _interval(attrs: Mapping[str, Any], kind: str) -> str | None:
    pointer = "/data/attributes/interval"
    if kind == "segment-values-report":
        if "interval" in attrs:
            raise invalid("'interval' is not allowed for segment values reports.", pointer)
        return None
    interval = attrs.get("interval")
    if interval is None:
        raise invalid("'interval' is required for segment series reports.", pointer)
    if interval not in INTERVALS:
        raise invalid(f"{interval!r} is not a valid interval.", pointer)
    return interval


def _timeframe_shape(attrs: Mapping[str, Any]) -> dict[str, Any]:
    pointer = "/data/attributes/timeframe"
    timeframe = attrs.get("timeframe")
    if timeframe is None:
        raise invalid("'timeframe' is required.", pointer)
    timeframe = _object(timeframe, pointer)
    keys = set(timeframe)
    if keys not in ({"key"}, {"start", "end"}):
        raise invalid("'timeframe' must contain either 'key' or both 'start' and 'end'.", pointer)
    return timeframe


def report_filter_ids(text: object) -> list[str] | None:
    """Segment ids from a report filter; ``None`` when there is no filter (all segments)."""
    pointer = "/data/attributes/filter"
    if text is None:
        return None
    if not isinstance(text, str):
        raise invalid("'filter' must be a string.", pointer)
    try:
        conditions = parse_filter(text)
    except FilterError as exc:
        raise invalid(str(exc), pointer) from None
    if len(conditions) > 1:
        raise invalid("Only one filter can be used per attribute.", pointer)
    return _segment_id_condition(conditions[0], pointer)


def _segment_id_condition(cond: Condition, pointer: str) -> list[str]:
    if cond.field != "segment_id":
        raise invalid(f"'{cond.field}' is not a valid filter field.", pointer)
    if cond.operator == "equals" and isinstance(cond.value, str):
        return [cond.value]
    if cond.operator == "any" and isinstance(cond.value, list) and cond.value:
        if len(cond.value) > MAX_FILTER_IDS:
            raise invalid(
                f"A maximum of {MAX_FILTER_IDS} ids is allowed per 'any' filter.", pointer
            )
        if not all(isinstance(v, str) for v in cond.value):
            raise invalid("Segment ids must be strings.", pointer)
        return list(dict.fromkeys(cond.value))
    if cond.operator not in ("equals", "any"):
        raise invalid(f"'{cond.operator}' is not a valid operator for segment_id.", pointer)
    raise invalid(f"Invalid value for '{cond.operator}' on segment_id.", pointer)


def parse_report(
    path: str, body: object, account: Account, data_floor: date | None = None
) -> ReportRequest:
    """Validate a report body in Klaviyo's order of checks; raise ApiError (400) on the first.

    ``data_floor`` is Klaviyo's first data day (default June 1st, 2023): a timeframe that starts
    before it is a 400 ``invalid`` at ``/data/attributes/timeframe/start``, filter or not.
    """
    kind = REPORT_TYPES[path]
    data = _object(_object(body, "/").get("data"), "/data")
    if data.get("type") != kind:
        raise invalid(f"The type must be '{kind}'.", "/data/type")
    attrs = _object(data.get("attributes"), "/data/attributes")
    for name in attrs:
        if name not in ("statistics", "timeframe", "filter", "interval"):
            raise invalid(
                f"'{name}' is not a valid field for this resource.", f"/data/attributes/{name}"
            )
    stats = _statistics(attrs)
    interval = _interval(attrs, kind)
    timeframe = _timeframe_shape(attrs)
    try:
        window = account.validate_window(timeframe, interval, data_floor)
    except TimeframeError as exc:
        raise invalid(exc.detail, exc.pointer) from None
    ids = report_filter_ids(attrs.get("filter"))
    return ReportRequest(kind, stats, window, interval, ids)


def report_document(
    request: ReportRequest,
    account: Account,
    end_inclusive: bool,
    self_url: str,
    alignment: Alignment | None = None,
    unfiltered_cap: int | None = None,
) -> dict[str, Any]:
    """The 200 body of a report request (unknown segment ids omitted).

    Without a filter it answers for every segment of the account, or the first
    ``unfiltered_cap`` of them.
    """
    known = account.segment_ids()
    if request.segment_ids is None:
        ids = known if unfiltered_cap is None else known[:unfiltered_cap]
    else:
        present = set(known)
        ids = [seg_id for seg_id in request.segment_ids if seg_id in present]
    attributes: dict[str, Any]
    if request.interval is None:
        results = account.values_report(ids, request.window, request.statistics, end_inclusive)
        attributes = {"results": results}
    else:
        date_times, results = account.series_report(
            ids, request.interval, request.window, request.statistics, end_inclusive, alignment
        )
        attributes = {"results": results, "date_times": date_times}
    data = {
        "type": request.kind,
        "id": str(uuid.uuid4()),
        "attributes": attributes,
        "links": {"self": self_url},
    }
    return {"data": data, "links": {"self": self_url}}


# ----- segments -----------------------------------------------------------------------------------
def _single(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _page_size(query: Mapping[str, Sequence[str]]) -> int:
    raw = _single(query, "page[size]")
    if raw is None:
        return PAGE_SIZE_MAX
    if not raw.isdigit() or not 1 <= int(raw) <= PAGE_SIZE_MAX:
        raise invalid(
            f"page[size] must be an integer between 1 and {PAGE_SIZE_MAX}.", parameter="page[size]"
        )
    return int(raw)


def encode_cursor(offset: int) -> str:
    """An opaque cursor for a list offset."""
    return base64.urlsafe_b64encode(f"standin:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(query: Mapping[str, Sequence[str]]) -> int:
    raw = _single(query, "page[cursor]")
    if raw is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        prefix, offset = text.split(":")
        if prefix != "standin" or not offset.isdigit():
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid("Invalid page cursor.", parameter="page[cursor]") from None
    return int(offset)


def _fields(query: Mapping[str, Sequence[str]]) -> list[str] | None:
    raw = _single(query, "fields[segment]")
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in SEGMENT_FIELDS:
            raise invalid(
                f"'{name}' is not a valid field for segment.", parameter="fields[segment]"
            )
    return names


def _matches(cond: Condition, attrs: Mapping[str, Any]) -> bool:
    actual = attrs[cond.field]
    if cond.operator == "greater-than":
        return actual is not None and datetime.fromisoformat(actual) > cond.value
    if cond.operator == "any":
        return actual in cond.value
    return actual == cond.value


def _check_segment_condition(cond: Condition) -> None:
    allowed = _SEGMENT_FILTERS.get(cond.field)
    if allowed is None or cond.operator not in allowed:
        raise invalid(
            f"Filter '{cond.operator}' on '{cond.field}' is not supported.", parameter="filter"
        )
    expected: type | tuple[type, ...]
    expected = {
        "created": datetime,
        "updated": datetime,
        "is_active": bool,
        "is_starred": bool,
    }.get(cond.field, str)
    values = cond.value if cond.operator == "any" else [cond.value]
    if (
        not isinstance(values, list)
        or not values
        or not all(isinstance(v, expected) for v in values)
    ):
        raise invalid(f"Invalid value for '{cond.operator}' on '{cond.field}'.", parameter="filter")


def _segment_filter(query: Mapping[str, Sequence[str]]) -> list[Condition]:
    raw = _single(query, "filter")
    if raw is None:
        return []
    try:
        conditions = parse_filter(raw)
    except FilterError as exc:
        raise invalid(str(exc), parameter="filter") from None
    for cond in conditions:
        _check_segment_condition(cond)
    return conditions


def _sorted(rows: list[dict[str, Any]], query: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    raw = _single(query, "sort")
    if raw is None:
        return rows
    if raw.lstrip("-") not in _SORTS:
        raise invalid(f"'{raw}' is not a valid sort.", parameter="sort")
    key = raw.lstrip("-")
    return sorted(rows, key=lambda row: row[key] or "", reverse=raw.startswith("-"))


def segment_resource(row: Mapping[str, Any], fields: list[str] | None, base: str) -> dict[str, Any]:
    """One segment as a JSON:API resource, with sparse fieldsets applied."""
    attrs = {k: v for k, v in row.items() if k != "id"}
    if fields is not None:
        wanted = {name.split(".")[0] for name in fields}
        attrs = {k: v for k, v in attrs.items() if k in wanted}
    return {
        "type": "segment",
        "id": row["id"],
        "attributes": attrs,
        "relationships": {},
        "links": {"self": f"{base}/api/segments/{row['id']}"},
    }


def _page_link(
    base: str, path: str, query: Mapping[str, Sequence[str]], offset: int | None
) -> str | None:
    if offset is None:
        return None
    params = [(k, v) for k, values in query.items() if k != "page[cursor]" for v in values]
    if offset > 0:
        params.append(("page[cursor]", encode_cursor(offset)))
    text = urlencode(params)
    return f"{base}{path}" + (f"?{text}" if text else "")


def segments_document(
    query: Mapping[str, Sequence[str]], account: Account, base: str, path: str
) -> dict[str, Any]:
    """The body of ``GET /api/segments``: a filtered, sorted, cursor-paginated page."""
    size = _page_size(query)
    offset = _decode_cursor(query)
    fields = _fields(query)
    conditions = _segment_filter(query)
    rows = [row for row in account.segments() if all(_matches(c, row) for c in conditions)]
    rows = _sorted(rows, query)
    page = rows[offset : offset + size]
    next_offset = offset + size if offset + size < len(rows) else None
    prev_offset = max(0, offset - size) if offset > 0 else None
    links = {
        "self": _page_link(base, path, query, offset),
        "next": _page_link(base, path, query, next_offset),
        "prev": _page_link(base, path, query, prev_offset),
    }
    return {"data": [segment_resource(row, fields, base) for row in page], "links": links}


def segment_document(segment_id: str, account: Account, base: str) -> dict[str, Any]:
    """The body of ``GET /api/segments/{id}`` (404 when unknown)."""
    try:
        attrs = account.segment_attributes(segment_id)
    except KeyError:
        raise ApiError(
            404, "not_found", f"A segment with id {segment_id} does not exist."
        ) from None
    row = attrs | {"id": segment_id}
    return {
        "data": segment_resource(row, None, base),
        "links": {"self": f"{base}/api/segments/{segment_id}"},
    }
