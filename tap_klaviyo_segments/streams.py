"""The tap's streams: segments (metadata) and segment_values; segment_series is in series.py."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import timezone
from functools import cached_property
from typing import Any
from urllib.parse import ParseResult, urlsplit

import requests
from singer_sdk import typing as th
from singer_sdk.helpers.types import Context
from singer_sdk.pagination import BaseHATEOASPaginator
from typing_extensions import override

from tap_klaviyo_segments.cli import one_failure_line
from tap_klaviyo_segments.client import KlaviyoStream
from tap_klaviyo_segments.errors import (
    ListingThrottledError,
    MalformedResponseError,
    PaginationError,
    ThrottledError,
)
from tap_klaviyo_segments.planning import ValuesCall, plan_values_calls
from tap_klaviyo_segments.report_stream import KlaviyoReportStream
from tap_klaviyo_segments.reports import (
    ValuesReport,
    parse_values_report,
    report_body,
)
from tap_klaviyo_segments.settings import STATISTICS

#: Klaviyo's maximum page size for GET /api/segments.
SEGMENTS_PAGE_SIZE = 10
SEGMENT_FIELDS = ("name", "created", "updated", "is_active", "is_processing", "is_starred")


def statistic_properties() -> list[th.Property[Any]]:
    """The four statistics, the same in both report streams."""
    return [
        th.Property("total_members", th.IntegerType, description="Members at the bucket's end."),
        th.Property("members_added", th.IntegerType, description="Profiles added in the bucket."),
        th.Property(
            "members_removed", th.IntegerType, description="Profiles removed in the bucket."
        ),
        th.Property("net_members_changed", th.IntegerType, description="Added minus removed."),
    ]


class SameHostPaginator(BaseHATEOASPaginator):
    """Follows ``links.next`` only on the configured host, each page at most once, up to a cap.

    The key goes nowhere else; a cursor that cycles back to a page already read ends the
    listing (every segment on the cycle was read once); a cursor that never repeats and never
    ends stops at :attr:`max_pages` with an error.
    """

    #: 10,000 segments at Klaviyo's 10 a page: far past any real account.
    max_pages = 1000

    def __init__(self, api_url: str, logger: logging.Logger) -> None:
        super().__init__()
        self._origin = urlsplit(api_url)
        self._logger = logger
        self._seen: set[str] = set()

    @override
    def get_next_url(self, response: requests.Response) -> str | None:
        """The next page's URL, re-rooted on ``api_url``; None once a page would repeat."""
        self._seen.add(response.url)
        links = response.json().get("links") or {}
        next_url = links.get("next") if isinstance(links, dict) else None
        if not next_url:
            return None
        parts = urlsplit(next_url)
        url = parts._replace(scheme=self._origin.scheme, netloc=self._origin.netloc).geturl()
        if url in self._seen:
            self._logger.warning(
                "Klaviyo's GET /api/segments links.next points back to a page already read "
                "(after %d pages); the listing ends there, each segment emitted once",
                self.count,
            )
            return None
        if self.count >= self.max_pages:  # pages read so far, this one included
            raise PaginationError(
                f"GET /api/segments still had a next page after {self.max_pages} pages "
                f"({self.max_pages * SEGMENTS_PAGE_SIZE} segments): its links.next seems to "
                "never end; set segment_ids to report without listing the segments"
            )
        self._seen.add(url)
        return url


class SegmentsStream(KlaviyoStream):
    """Segment metadata from ``GET /api/segments``; also lists the ids the reports ask about."""

    name = "segments"
    path = "/api/segments"
    primary_keys = ("id",)
    replication_key = None
    records_jsonpath = "$.data[*]"
    schema = th.PropertiesList(
        th.Property("id", th.StringType, required=True, description="Segment id."),
        th.Property("name", th.StringType),
        th.Property("created", th.DateTimeType),
        th.Property("updated", th.DateTimeType),
        th.Property("is_active", th.BooleanType, description="Inactive segments do not update."),
        th.Property("is_processing", th.BooleanType),
        th.Property("is_starred", th.BooleanType),
    ).to_dict()

    #: Why the listing stopped early in this run (a long throttle), if it did.
    throttled: str | None = None

    @cached_property
    def _emitted(self) -> set[str]:
        """Ids emitted in this run: a page served twice must not emit its segments twice."""
        return set()

    @override
    def get_new_paginator(self) -> SameHostPaginator:
        """Cursor pagination through absolute ``links.next`` URLs."""
        return SameHostPaginator(self.settings.api_url, self.logger)

    @override
    def get_url_params(
        self, context: Context | None, next_page_token: ParseResult | None
    ) -> dict[str, Any]:
        """First page: size, fields and filter; later pages carry them in ``links.next``."""
        if next_page_token is not None:
            return {}
        params: dict[str, Any] = {
            "page[size]": SEGMENTS_PAGE_SIZE,
            "fields[segment]": ",".join(SEGMENT_FIELDS),
        }
        if context and context.get("active_only"):
            params["filter"] = "equals(is_active,true)"
        return params

    @override
    def get_http_request(self, *, page: Any) -> Any:
        """Use the next page's URL as Klaviyo gave it (its query holds the cursor)."""
        request = super().get_http_request(page=page)
        if page.next_page_token is not None:
            request.url = page.next_page_token.geturl()
        return request

    @override
    def validate_response(self, response: requests.Response) -> None:
        """A 200 must be a JSON:API page; an HTML page (a proxy, a login wall) is retried."""
        super().validate_response(response)
        try:
            payload = response.json()
        except ValueError:
            payload = None
            reason = "the body is not JSON"
        else:
            reason = "the body has no data list"
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            kind = response.headers.get("Content-Type") or "no Content-Type"
            raise MalformedResponseError(
                f"Klaviyo answered GET {self.path} with HTTP {response.status_code} but "
                f"{reason} ({kind}): check api_url and any proxy in between",
                response,
            )

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Every segment once; a long throttle ends the listing cleanly with what was read."""
        if self.ABORT_AT_RECORD_COUNT is not None:  # singer-sdk's dry run: ``--test``
            yield from self._connection_test()
            return
        try:
            yield from super().get_records(context)
        except (ListingThrottledError, ThrottledError) as exc:
            self.throttled = self._throttle_reason(exc)
            self.logger.warning(
                "Stopping segments cleanly: %s. The segments read so far are emitted and state "
                "is saved; the next run lists them again.",
                self.throttled,
            )

    @override
    def post_process(
        self, row: dict[str, Any], context: Context | None = None
    ) -> dict[str, Any] | None:
        """Flatten JSON:API's ``attributes`` into the record; a segment seen before is dropped."""
        if row["id"] in self._emitted:
            return None
        self._emitted.add(row["id"])
        attributes = row.get("attributes") or {}
        return {"id": row["id"], **{name: attributes.get(name) for name in SEGMENT_FIELDS}}

    def _connection_test(self) -> Iterator[dict[str, Any]]:
        """``--test``: the key, its scope and the API, answered by the listing alone.

        singer-sdk's test syncs a record of every stream; the report streams make no call in a
        dry run (two of the day's report calls, 30 s apart, for nothing the listing does not
        show). One segment is emitted, so a test that looks for a RECORD (Meltano's) sees one.
        """
        with one_failure_line(self.logger):  # click runs --test before the tap's invoke
            rows = list(self.request_records(None))
        active = sum(1 for row in rows if (row.get("attributes") or {}).get("is_active"))
        self.logger.info(
            "Connection test passed: %s accepted the api_key with the segments:read scope and "
            "lists %d segments (%d active); no report call was made",
            self.settings.api_url,
            len(rows),
            active,
        )
        first = self.post_process(rows[0]) if rows else None
        if first is not None:
            yield first

    def list_segments(self) -> dict[str, bool]:
        """Every segment of the account (id -> is_active), without emitting any record.

        One listing tells the run both which segments to report on and which no longer
        exist (their bookmarks are dropped). Raises :class:`ListingThrottledError` when Klaviyo
        throttles the listing for longer than the tap waits (or did so earlier in this run).
        """
        if self.throttled is not None:
            raise ListingThrottledError(self.throttled)
        try:
            return {
                row["id"]: bool((row.get("attributes") or {}).get("is_active", True))
                for row in self.request_records(None)
            }
        except (ListingThrottledError, ThrottledError) as exc:
            self.throttled = self._throttle_reason(exc)
            raise ListingThrottledError(self.throttled) from None

    def _throttle_reason(self, exc: Exception) -> str:
        if isinstance(exc, ThrottledError):
            wait = "none given" if exc.retry_after is None else f"{exc.retry_after:g} s"
            return (
                f"Klaviyo still throttled GET {self.path} after {self.settings.max_retries} "
                f"retries (last Retry-After: {wait})"
            )
        return str(exc)


class SegmentValuesStream(KlaviyoReportStream[ValuesCall, ValuesReport]):
    """Current values per segment and configured timeframe key, one row per day."""

    name = "segment_values"
    path = "/api/segment-values-reports"
    primary_keys = ("segment_id", "timeframe", "as_of_date")
    replication_key = "as_of_date"
    is_sorted = True
    #: The bookmark only records the day of the last read; a clock that moved back must not
    #: crash the run over it.
    check_sorted = False
    schema = th.PropertiesList(
        th.Property("segment_id", th.StringType, required=True),
        th.Property(
            "timeframe", th.StringType, required=True, description="Klaviyo timeframe key."
        ),
        th.Property(
            "as_of_date",
            th.DateType,
            required=True,
            description="Local day of the read, on Klaviyo's clock (its answer's Date header).",
        ),
        th.Property("extracted_at", th.DateTimeType, description="When it was read (UTC)."),
        *statistic_properties(),
    ).to_dict()

    @cached_property
    def answered(self) -> dict[str, set[str]]:
        """Timeframe -> the segments this run has a row for."""
        return {}

    @override
    def plan_calls(self) -> list[ValuesCall]:
        """Per timeframe key, the segments not read yet: batches of 100 or one whole call."""
        ids = self.run.segment_ids()
        calls: list[ValuesCall] = []
        for timeframe in self.settings.values_timeframes:
            skip = self.answered.get(timeframe, set()) | self.held(timeframe)
            wanted = [sid for sid in ids if sid not in skip]
            calls += plan_values_calls([timeframe], wanted, whole_account=self.whole_account)
        return calls

    @override
    def request_body(self, call: ValuesCall) -> dict[str, Any]:
        """Every statistic, always: a row must never hold null for a loaded value."""
        return report_body(
            "segment-values-report",
            statistics=STATISTICS,
            timeframe={"key": call.timeframe},
            segment_ids=None if call.whole_account else call.segment_ids,
        )

    @override
    def read_answer(self, call: ValuesCall, payload: Any) -> ValuesReport:
        """The answer parsed strictly (see reports.py)."""
        return parse_values_report(payload, requested_ids=call.segment_ids, statistics=STATISTICS)

    @override
    def emit(self, call: ValuesCall, answer: ValuesReport) -> Iterator[dict[str, Any]]:
        """One row per segment, dated by the day Klaviyo's clock shows in the account timezone.

        The numbers are Klaviyo's as of its own "now", so a machine clock on the other side of
        midnight must not date them (a same-day re-run replaces the day's rows).
        """
        if not call.whole_account:
            self.run.warn_unexpected(answer.unexpected_ids)
        now = self.run.now_utc()
        day = (self.run.klaviyo_local_now() or self.run.local_now()).date().isoformat()
        extracted_at = now.astimezone(timezone.utc).isoformat()
        for segment_id, stats in answer.results.items():
            yield {
                "segment_id": segment_id,
                "timeframe": call.timeframe,
                "as_of_date": day,
                "extracted_at": extracted_at,
                **stats,
            }
        self.answered.setdefault(call.timeframe, set()).update(answer.results)

    @override
    def left_out_of(self, call: ValuesCall, answer: ValuesReport) -> tuple[str, str, list[str]]:
        return call.timeframe, call.timeframe, answer.missing_ids

    @override
    def describe(self, call: ValuesCall) -> str:
        return f"{call.timeframe}, {segments_in(call.segment_ids, call.whole_account)}"


def segments_in(segment_ids: tuple[str, ...], whole_account: bool) -> str:
    """The segments of a call, for the progress line."""
    if whole_account:
        return f"the whole account ({len(segment_ids)} segments wanted)"
    return f"{len(segment_ids)} segments"
