"""The tap's streams: segments, segment_values and segment_series."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any
from urllib.parse import ParseResult, urlsplit

import requests
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from singer_sdk.pagination import BaseHATEOASPaginator
from typing_extensions import override

from tap_klaviyo_segments.answers import (
    GridMismatch,
    TimezoneMismatch,
    WindowAnswer,
    check_series_answer,
)
from tap_klaviyo_segments.bookmarks import REPLICATION_KEY, SeriesBookmarks
from tap_klaviyo_segments.client import (
    AnswerMismatchError,
    KlaviyoAPIError,
    KlaviyoReportStream,
    KlaviyoStream,
    ListingThrottledError,
    MalformedResponseError,
    ThrottledError,
    WholeAccountRefused,
)
from tap_klaviyo_segments.pacing import ReportBudgetSpent
from tap_klaviyo_segments.planning import (
    INTERVALS,
    BucketGrid,
    IntervalPlan,
    ReportCall,
    ValuesCall,
    as_batches,
    data_end_for,
    next_resume_point,
    plan_interval,
    plan_values_calls,
    reporting_anchor,
)
from tap_klaviyo_segments.reports import (
    ValuesReport,
    parse_series_report,
    parse_values_report,
    report_body,
)
from tap_klaviyo_segments.settings import STATISTICS

#: Klaviyo's maximum page size for GET /api/segments.
SEGMENTS_PAGE_SIZE = 10
SEGMENT_FIELDS = ("name", "created", "updated", "is_active", "is_processing", "is_starred")


def _statistic_properties() -> list[th.Property[Any]]:
    return [
        th.Property("total_members", th.IntegerType, description="Members at the bucket's end."),
        th.Property("members_added", th.IntegerType, description="Profiles added in the bucket."),
        th.Property(
            "members_removed", th.IntegerType, description="Profiles removed in the bucket."
        ),
        th.Property("net_members_changed", th.IntegerType, description="Added minus removed."),
    ]


class PaginationError(KlaviyoAPIError):
    """``links.next`` never ends: the listing stops instead of looping for ever."""


class _SameHostPaginator(BaseHATEOASPaginator):
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
    def get_new_paginator(self) -> _SameHostPaginator:
        """Cursor pagination through absolute ``links.next`` URLs."""
        return _SameHostPaginator(self.settings.api_url, self.logger)

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

    def list_ids(self, *, active_only: bool) -> list[str]:
        """Ids of the segments to report on, without emitting any record.

        Raises :class:`ListingThrottledError` when Klaviyo throttles the listing for longer
        than the tap waits (or did so earlier in this run).
        """
        if self.throttled is not None:
            raise ListingThrottledError(self.throttled)
        context = {"active_only": True} if active_only else None
        try:
            return [row["id"] for row in self.request_records(context)]
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


class SegmentValuesStream(KlaviyoReportStream):
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
        th.Property("as_of_date", th.DateType, required=True, description="Local day of the read."),
        th.Property("extracted_at", th.DateTimeType, description="When it was read (UTC)."),
        *_statistic_properties(),
    ).to_dict()

    def plan(self, segment_ids: Sequence[str]) -> list[ValuesCall]:
        """The calls a sync makes: per timeframe key, batches of 100 or one whole-account call."""
        return plan_values_calls(
            self.settings.values_timeframes, segment_ids, whole_account=self.whole_account
        )

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """One call per timeframe and 100 segments; a same-day re-run replaces the day's rows."""
        now = self.now_utc()
        as_of_date = self.settings.local_now(now).date().isoformat()
        extracted_at = now.astimezone(timezone.utc).isoformat()
        queue = deque(self.plan(self.segment_ids()))
        done = 0
        while queue:
            call = queue.popleft()
            what = f"{call.timeframe}, {_segments(call.segment_ids, call.whole_account)}"
            self._log_progress(done, done + len(queue) + 1, what)
            done += 1
            try:
                report = self._fetch(call)
            except ReportBudgetSpent as stop:
                self._stop_cleanly(stop, len(queue) + 1)
                return
            except WholeAccountRefused as refused:
                self._use_batches(f"{refused} (a report without a segment filter)", remember=True)
                queue = deque(as_batches([call, *queue]))
                continue
            for segment_id, stats in report.results.items():
                yield {
                    "segment_id": segment_id,
                    "timeframe": call.timeframe,
                    "as_of_date": as_of_date,
                    "extracted_at": extracted_at,
                    **stats,
                }
            if call.whole_account and report.missing_ids:
                self._use_batches(
                    f"An answer for the whole account left out {len(report.missing_ids)} wanted "
                    "segments",
                    remember=False,
                )
                missing = replace(call, segment_ids=tuple(report.missing_ids))
                queue = deque(as_batches([missing, *queue]))

    def _fetch(self, call: ValuesCall) -> ValuesReport:
        statistics = self.settings.statistics
        body = report_body(
            "segment-values-report",
            statistics=statistics,
            timeframe={"key": call.timeframe},
            segment_ids=None if call.whole_account else call.segment_ids,
        )
        report: ValuesReport = self._post_report(
            body,
            lambda payload: parse_values_report(
                payload, requested_ids=call.segment_ids, statistics=statistics
            ),
            whole_account=call.whole_account,
        )
        self._warn_about_ids(report, whole_account=call.whole_account)
        return report


class SegmentSeriesStream(KlaviyoReportStream):
    """Segment statistics per bucket, per interval; bookmarks per segment and interval."""

    name = "segment_series"
    path = "/api/segment-series-reports"
    primary_keys = ("segment_id", "interval", "date_time")
    replication_key = REPLICATION_KEY
    #: Rows are built with the schema's own JSON types (text, ints, booleans), so the SDK's
    #: per-record type conforming would change nothing: it was the biggest CPU cost per record
    #: (BENCHMARKS.md).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    schema = th.PropertiesList(
        th.Property("segment_id", th.StringType, required=True),
        th.Property(
            "interval",
            th.StringType,
            required=True,
            allowed_values=list(INTERVALS),
        ),
        th.Property(
            "date_time",
            th.DateTimeType,
            required=True,
            description="Bucket start, as Klaviyo labels it (with the account's UTC offset).",
        ),
        th.Property(
            "bucket_date",
            th.DateType,
            description="The bucket start's calendar day in the account timezone "
            "(group by this: targets store date_time converted to UTC).",
        ),
        *_statistic_properties(),
        th.Property(
            "is_complete",
            th.BooleanType,
            description="True once the bucket has ended and was read whole.",
        ),
    ).to_dict()

    @property
    @override
    def partitions(self) -> list[dict[str, Any]] | None:
        """One pass over all intervals: calls are planned across segments, not per partition."""
        return None

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        """No signpost: bookmarks are set from what was read, never from the clock."""
        return

    @override
    def _increment_stream_state(
        self, latest_record: dict[str, Any], *, context: Context | None = None
    ) -> None:
        """Bookmarks move per segment after a whole answer (see ``_advance``), not per record.

        The one SDK internal this stream overrides: singer-sdk moves a stream's bookmark after
        each record and offers no public switch to stop it, but one answer serves up to 100
        segments, each with its own bookmark.
        """

    def plan(
        self,
        segment_ids: Sequence[str],
        *,
        now: datetime,
        bookmarks: SeriesBookmarks | None = None,
    ) -> list[IntervalPlan]:
        """The series calls a sync makes from config and state; the call plan prints these."""
        bookmarks = bookmarks or self._bookmarks()
        return [
            self._plan_interval(interval, segment_ids, now, bookmarks)
            for interval in self.settings.series_intervals
        ]

    def _bookmarks(self) -> SeriesBookmarks:
        return SeriesBookmarks(self.stream_state, self.settings.timezone, self.logger)

    def _plan_interval(
        self,
        interval: str,
        segment_ids: Sequence[str],
        now: datetime,
        bookmarks: SeriesBookmarks,
        read_through: Mapping[str, datetime] | None = None,
    ) -> IntervalPlan:
        """One interval's calls from the bookmarks.

        ``read_through`` holds, for segments this run already read, where their reading ended:
        a re-plan in mid-run does not ask for those buckets again (the bookmark may lag behind,
        as recent buckets are re-read on the next run).
        """
        settings = self.settings
        grid = BucketGrid(
            interval, reporting_anchor(settings.start), bookmarks.alignment(interval) or ""
        )
        resume = {sid: bookmarks.resume_point(interval, sid, now=now) for sid in segment_ids}
        for sid, through in (read_through or {}).items():
            point = resume.get(sid)
            if point is None or point < through:
                resume[sid] = through
        data_end = data_end_for(grid, now, settings.end)
        return plan_interval(grid, resume, data_end, whole_account=self.whole_account)

    @override
    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Plan every interval's calls, then fetch, check, emit and bookmark them one by one."""
        now = self.settings.local_now(self.now_utc())
        bookmarks = self._bookmarks()
        ids = self.segment_ids()
        plans = self.plan(ids, now=now, bookmarks=bookmarks)
        self._calls_done = 0
        self._calls_planned = sum(len(plan.calls) for plan in plans)
        self.logger.info(
            "segment_series plan: %d report calls for %d segments", self._calls_planned, len(ids)
        )
        for index, plan in enumerate(plans):
            later = sum(len(p.calls) for p in plans[index + 1 :])
            stopped = yield from self._sync_interval(plan, ids, now, bookmarks, later)
            if stopped:
                return

    def _sync_interval(
        self,
        plan: IntervalPlan,
        ids: Sequence[str],
        now: datetime,
        bookmarks: SeriesBookmarks,
        later_calls: int,
    ) -> Generator[dict[str, Any], None, bool]:
        """Fetch one interval's calls; re-cut them once if Klaviyo's grid is not the one assumed.

        Returns True when the run must stop (budget spent), after the stop warning.
        """
        learned = False
        position = 0
        read_through: dict[str, datetime] = {}
        while position < len(plan.calls):
            call = plan.calls[position]
            self._log_progress(self._calls_done, self._calls_planned, _describe_call(call))
            try:
                answer = self._fetch(call, plan)
            except ReportBudgetSpent as stop:
                self._stop_cleanly(stop, len(plan.calls) - position + later_calls)
                return True
            except WholeAccountRefused as refused:
                self._calls_done += 1
                self._use_batches(f"{refused} (a report without a segment filter)", remember=True)
                plan, position = self._replan(plan, position + 1, ids, now, bookmarks), 0
                continue
            except GridMismatch as mismatch:
                if learned:
                    msg = (
                        f"{mismatch} right after the tap re-cut its windows on the grid Klaviyo "
                        "showed before: its bucket alignment is not stable, so no row of this "
                        "answer was written. Report this with the log at DEBUG."
                    )
                    raise AnswerMismatchError(msg) from None
                learned = True
                self._calls_done += 1
                bookmarks.set_alignment(mismatch.interval, mismatch.alignment)
                self._write_state()
                plan, position = self._replan(plan, position + 1, ids, now, bookmarks), 0
                self.logger.info(
                    "%s; the tap now cuts %s windows on that grid (kept in STATE) and reads "
                    "them again: %d calls",
                    mismatch,
                    mismatch.interval,
                    len(plan.calls),
                )
                continue
            self._calls_done += 1
            yield from self._records(answer, plan)
            self._advance(bookmarks, answer, now)
            position += 1
            through = answer.grid.start(call.last_bucket + 1)
            read_through.update(dict.fromkeys(answer.report.results, through))
            if call.whole_account and answer.report.missing_ids:
                # Nothing promises an unfiltered answer holds every segment: ask the missing
                # ones again in batches, over the windows they still need, and batch from now on.
                self._use_batches(
                    f"An answer for the whole account left out {len(answer.report.missing_ids)} "
                    "wanted segments",
                    remember=False,
                )
                plan = self._replan(plan, position, ids, now, bookmarks, read_through)
                position = 0
        return False

    def _replan(
        self,
        plan: IntervalPlan,
        consumed: int,
        ids: Sequence[str],
        now: datetime,
        bookmarks: SeriesBookmarks,
        read_through: Mapping[str, datetime] | None = None,
    ) -> IntervalPlan:
        """The interval's remaining calls from the bookmarks as they stand now.

        ``consumed`` calls of ``plan`` were made (a refused or mismatched one included); the
        progress count trades the rest of ``plan`` for the new calls.
        """
        new = self._plan_interval(plan.grid.interval, ids, now, bookmarks, read_through)
        self._calls_planned += len(new.calls) - (len(plan.calls) - consumed)
        return new

    @override
    def _resume_note(self) -> str:
        """Each interval's oldest resume point, read back from the state being saved."""
        settings = self.settings
        now = settings.local_now(self.now_utc())
        bookmarks = self._bookmarks()
        first = reporting_anchor(settings.start)
        points = []
        for interval in settings.series_intervals:
            resumes = [
                max(bookmarks.resume_point(interval, sid, now=now) or first, first)
                for sid in self.segment_ids()
            ]
            if resumes:
                points.append(f"{interval} from {min(resumes).isoformat()}")
        return ", ".join(points) or "from start_date"

    def _fetch(self, call: ReportCall, plan: IntervalPlan) -> WindowAnswer:
        """POST the call's report and check the answer inside the retry (a bad one is retried)."""
        settings = self.settings
        timeframe = {
            "start": settings.to_klaviyo_time(call.start),
            "end": settings.to_klaviyo_time(call.timeframe_end),
        }
        body = report_body(
            "segment-series-report",
            statistics=settings.statistics,
            timeframe=timeframe,
            segment_ids=None if call.whole_account else call.segment_ids,
            interval=call.interval,
        )

        def parse(payload: Any) -> WindowAnswer:
            report = parse_series_report(
                payload, requested_ids=call.segment_ids, statistics=settings.statistics
            )
            return check_series_answer(report, call, plan.grid, settings.timezone)

        try:
            answer: WindowAnswer = self._post_report(body, parse, whole_account=call.whole_account)
        except TimezoneMismatch as exc:
            raise AnswerMismatchError(str(exc)) from None
        self._warn_about_ids(answer.report, whole_account=call.whole_account)
        return answer

    def _records(self, answer: WindowAnswer, plan: IntervalPlan) -> Iterator[dict[str, Any]]:
        """Rows for the buckets this call owns, from each segment's own resume point on.

        A bucket outside the window belongs to another call (so an inclusive end never emits a
        bucket twice); a segment riding along in a shared window gets only the buckets it needs.
        """
        grid, interval = answer.grid, answer.call.interval
        buckets = answer.buckets
        nones: list[int | None] = [None] * len(answer.report.date_times)  # not asked for
        for segment_id, series in answer.report.results.items():
            point = plan.resume_points.get(segment_id)
            first = grid.index(point) if point is not None else 0
            # The hot loop (one pass per record): one dict literal, keys in STATISTICS order.
            total, added, removed, net = (series.get(name, nones) for name in STATISTICS)
            for bucket in buckets:
                if bucket.index < first:
                    continue
                position = bucket.position
                yield {
                    "segment_id": segment_id,
                    "interval": interval,
                    "date_time": bucket.label,
                    "bucket_date": bucket.local_date,
                    "total_members": total[position],
                    "members_added": added[position],
                    "members_removed": removed[position],
                    "net_members_changed": net[position],
                    "is_complete": bucket.complete,
                }

    def _advance(self, bookmarks: SeriesBookmarks, answer: WindowAnswer, now: datetime) -> None:
        """Move the batch's bookmarks past what this answer settled, then save state."""
        call = answer.call
        resume = next_resume_point(
            answer.grid, call, answer.returned, read_at=now, lookback=self.settings.lookback
        )
        if resume is None:
            return
        unanswered = set(answer.report.missing_ids)
        for segment_id in call.segment_ids:
            if segment_id in unanswered:
                continue  # nothing was emitted for it: moving on would skip its data
            current = bookmarks.resume_point(call.interval, segment_id, now=now)
            if current is None or current < resume:
                bookmarks.set(call.interval, segment_id, resume)
        self._write_state()


def _describe_call(call: ReportCall) -> str:
    return (
        f"{call.interval} {call.start.isoformat()} to {call.end.isoformat()}, "
        f"{_segments(call.segment_ids, call.whole_account)}"
    )


def _segments(segment_ids: Sequence[str], whole_account: bool) -> str:
    if whole_account:
        return f"the whole account ({len(segment_ids)} segments wanted)"
    return f"{len(segment_ids)} segments"
