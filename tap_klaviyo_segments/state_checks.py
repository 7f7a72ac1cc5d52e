"""Checks of an incoming STATE: keep what this tap wrote, drop the rest with a WARNING.

Pure functions over the incoming dict (no tap, no I/O); :mod:`tap_klaviyo_segments.state` owns
the STATE during the run. Dropping only ever makes the tap re-read more, never less.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.planning import ALIGNMENTS, FIRST_DATA_DAY, INTERVALS

REPLICATION_KEY = "date_time"
ALIGNMENT_KEY = "bucket_alignment"
DATA_FLOOR_KEY = "data_floor"
READ_WITH_KEY = "read_with"
UNKNOWN_SEGMENTS_KEY = "unknown_segments"
#: In a report stream's state: Klaviyo refused a report without a segment filter, so the
#: stream asks in filtered batches (see ``whole_account_calls``).
WHOLE_ACCOUNT_KEY = "whole_account_calls"
WHOLE_ACCOUNT_REFUSED = "refused"
SERIES_STREAM = "segment_series"
VALUES_STREAM = "segment_values"

#: How many offending entries a warning quotes.
_QUOTED = 5


class StateError(ValueError):
    """A STATE the tap cannot use at all (not an object): the run stops before any request."""


def singer_state(loaded: dict[str, Any] | None, source: str) -> dict[str, Any] | None:
    """The tap's STATE inside any state file a user has: bare, or wrapped by Meltano.

    Meltano keeps ``{"singer_state": {...}}`` (and ``meltano state get`` prints that); a file
    that holds neither bookmarks nor such a wrapper is not a state this plan can use.
    """
    if loaded is None:
        return None
    if "singer_state" in loaded:
        inner = loaded["singer_state"]
        if not isinstance(inner, dict):
            raise StateError(f"{source}: its singer_state is not an object")
        loaded = inner
    if loaded and not ({"bookmarks", "report_calls"} & loaded.keys()):
        raise StateError(
            f"{source} holds no bookmarks (keys: {', '.join(sorted(loaded))[:80]}): pass the STATE "
            "the tap wrote, or `meltano state get <state id>` output"
        )
    return loaded


def read_moment(raw: Any) -> datetime | None:
    """An ISO 8601 date-time as stored in a bookmark, or None if it is not one."""
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "unknown")


def not_an_object(state: Any) -> str:
    """What to say about a STATE that is not a JSON object."""
    return (
        f'STATE must be a JSON object such as {{"bookmarks": {{...}}}}, not {_kind(state)}: '
        "pass the last STATE this tap wrote, or no state for a full sync"
    )


def check_state(
    state: Any, *, streams: Collection[str], today: date, logger: logging.Logger
) -> dict[str, Any]:
    """The usable part of an incoming STATE; every part dropped is named in a WARNING.

    A STATE that is not an object stops the run (:class:`StateError`): it is not this tap's
    and guessing could skip data. Anything else odd inside it (another tap's streams, wrong
    shapes, unreadable values, partitions this tap never writes) is dropped, which only ever
    makes the tap re-read more, never less.
    """
    if state is None:
        return {}
    if not isinstance(state, dict):
        raise StateError(not_an_object(state))
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        logger.warning(
            "Ignoring STATE: its 'bookmarks' is %s, not an object; syncing every stream from "
            "start_date",
            _kind(bookmarks),
        )
        return _with_call_record({}, state, logger)
    unknown = [name for name in bookmarks if name not in streams]
    if unknown:
        logger.warning(
            "Ignoring STATE bookmarks of %d streams this tap does not have (%s): a STATE from "
            "another tap?",
            len(unknown),
            ", ".join(repr(name) for name in unknown[:_QUOTED]),
        )
    checked: dict[str, Any] = {}
    for name in streams:
        if name not in bookmarks:
            continue
        stream_state = bookmarks[name]
        if not isinstance(stream_state, dict):
            logger.warning(
                "Ignoring the STATE of stream %s: it is %s, not an object; syncing it from "
                "start_date",
                name,
                _kind(stream_state),
            )
            continue
        checked[name] = _check_stream_state(name, dict(stream_state), today, logger)
    return _with_call_record({"bookmarks": checked}, state, logger)


def _with_call_record(
    checked: dict[str, Any], state: dict[str, Any], logger: logging.Logger
) -> dict[str, Any]:
    """Carry over the record of recent report calls (the daily budget across runs).

    Dropping a broken record would let this run spend a budget earlier runs already spent, so
    it is kept, marked unreadable, and the sync assumes the whole budget was just spent.
    """
    unknown = state.get(UNKNOWN_SEGMENTS_KEY)
    if isinstance(unknown, list) and all(isinstance(sid, str) for sid in unknown):
        checked[UNKNOWN_SEGMENTS_KEY] = unknown
    elif unknown is not None:
        logger.warning(
            "Ignoring %s in STATE: %s, not a list of ids; such ids are looked up again",
            UNKNOWN_SEGMENTS_KEY,
            _kind(unknown),
        )
    if ledger.STATE_KEY not in state:
        return checked
    record, problem = ledger.check(state[ledger.STATE_KEY])
    if problem:
        logger.warning(
            "The record of recent report calls in STATE (%r) is unreadable: %s. The next report "
            "stream assumes the whole report_calls_per_day budget was spent just before it; "
            "remove %r from the state to override",
            ledger.STATE_KEY,
            problem,
            ledger.STATE_KEY,
        )
    checked[ledger.STATE_KEY] = record
    return checked


def _check_stream_state(
    name: str, stream_state: dict[str, Any], today: date, logger: logging.Logger
) -> dict[str, Any]:
    remembered = stream_state.get(WHOLE_ACCOUNT_KEY, WHOLE_ACCOUNT_REFUSED)
    if name in (SERIES_STREAM, VALUES_STREAM) and remembered != WHOLE_ACCOUNT_REFUSED:
        logger.warning(
            "Ignoring %s=%r of %s in STATE (only %r is kept); whole-account calls stay on",
            WHOLE_ACCOUNT_KEY,
            remembered,
            name,
            WHOLE_ACCOUNT_REFUSED,
        )
        stream_state.pop(WHOLE_ACCOUNT_KEY)
    if name == SERIES_STREAM:
        if "replication_key_value" in stream_state:
            logger.warning(
                "Ignoring the stream-level bookmark %r of %s: its bookmarks are per segment and "
                "interval (partitions)",
                stream_state.get("replication_key_value"),
                name,
            )
            stream_state.pop("replication_key", None)
            stream_state.pop("replication_key_value", None)
        if "partitions" in stream_state:
            stream_state["partitions"] = _check_series_partitions(
                stream_state["partitions"], logger
            )
        if ALIGNMENT_KEY in stream_state:
            stream_state[ALIGNMENT_KEY] = _check_alignments(stream_state[ALIGNMENT_KEY], logger)
        _check_series_notes(stream_state, today, logger)
        return stream_state
    if "partitions" in stream_state:
        logger.warning(
            "Ignoring the partitions in the STATE of %s: this tap keeps none for that stream",
            name,
        )
        stream_state.pop("partitions")
    if name == VALUES_STREAM and "replication_key_value" in stream_state:
        raw = stream_state["replication_key_value"]
        problem = _values_bookmark_problem(raw, today)
        if problem:
            logger.warning(
                "Ignoring the bookmark %r of %s: %s (it only records the day of the last read; "
                "today's values are read either way)",
                raw,
                name,
                problem,
            )
            stream_state.pop("replication_key", None)
            stream_state.pop("replication_key_value", None)
    elif name != VALUES_STREAM:
        for key in ("replication_key", "replication_key_value"):
            stream_state.pop(key, None)
    return stream_state


def _check_alignments(learned: Any, logger: logging.Logger) -> dict[str, str]:
    """Keep the alignments this tap knows; anything else is learned again from an answer."""
    if not isinstance(learned, dict):
        logger.warning(
            "Ignoring %s of %s in STATE: %s, not an object; the tap checks Klaviyo's grid again",
            ALIGNMENT_KEY,
            SERIES_STREAM,
            _kind(learned),
        )
        return {}
    kept = {
        interval: alignment
        for interval, alignment in learned.items()
        if interval in ALIGNMENTS and alignment in ALIGNMENTS[interval]
    }
    if len(kept) != len(learned):
        logger.warning(
            "Ignoring unknown entries of %s in STATE (%s); the tap checks Klaviyo's grid again",
            ALIGNMENT_KEY,
            ", ".join(f"{k}={v!r}" for k, v in learned.items() if k not in kept)[:200],
        )
    return kept


def _values_bookmark_problem(raw: Any, today: date) -> str | None:
    try:
        day = date.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        day = None
    if day is None:
        return "not a date (YYYY-MM-DD)"
    if day > today:
        return f"it lies after today ({today.isoformat()})"
    return None


def _check_series_partitions(partitions: Any, logger: logging.Logger) -> list[dict[str, Any]]:
    """Keep the partitions this tap writes; of duplicates, the earliest (it skips nothing)."""
    if not isinstance(partitions, list):
        logger.warning(
            "Ignoring the partitions of %s in STATE: %s, not a list; re-reading every segment "
            "from start_date",
            SERIES_STREAM,
            _kind(partitions),
        )
        return []
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    dropped: list[str] = []
    for partition in partitions:
        reason = _series_partition_problem(partition)
        if reason:
            dropped.append(f"{str(partition)[:80]} ({reason})")
            continue
        context = partition["context"]
        key = (context["interval"], context["segment_id"])
        earlier = kept.get(key)
        if earlier is None or _sort_key(partition) < _sort_key(earlier):
            kept[key] = partition
    if dropped:
        logger.warning(
            "Ignoring %d odd %s bookmarks in STATE; those segments are re-read from start_date: %s",
            len(dropped),
            SERIES_STREAM,
            "; ".join(dropped[:_QUOTED]),
        )
    return list(kept.values())


def _series_partition_problem(partition: Any) -> str | None:
    if not isinstance(partition, dict):
        return f"{_kind(partition)}, not an object"
    context = partition.get("context")
    if not isinstance(context, dict) or set(context) != {"interval", "segment_id"}:
        return "its context is not {interval, segment_id}"
    if context["interval"] not in INTERVALS or not isinstance(context["segment_id"], str):
        return f"interval must be one of {', '.join(INTERVALS)} and segment_id a string"
    raw = partition.get("replication_key_value")
    if raw is not None and read_moment(raw) is None:
        return "its replication_key_value is not an ISO 8601 date-time"
    return None


def _sort_key(partition: dict[str, Any]) -> datetime:
    moment = read_moment(partition.get("replication_key_value"))
    if moment is None:
        return datetime.min
    return moment.replace(tzinfo=None) if moment.tzinfo is None else _as_naive_utc(moment)


def _as_naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def _check_series_notes(stream_state: dict[str, Any], today: date, logger: logging.Logger) -> None:
    """Keep a readable data floor and ``read_with``; drop anything else with a WARNING."""
    floor = stream_state.get(DATA_FLOOR_KEY)
    if floor is not None:
        try:
            day = date.fromisoformat(floor) if isinstance(floor, str) else None
        except ValueError:
            day = None
        if day is None or not FIRST_DATA_DAY.date() <= day <= today:
            logger.warning(
                "Ignoring %s=%r of %s in STATE (not a day from 2023-06-01 to today); Klaviyo "
                "tells the tap again if its data starts later",
                DATA_FLOOR_KEY,
                floor,
                SERIES_STREAM,
            )
            stream_state.pop(DATA_FLOOR_KEY)
    read_with = stream_state.get(READ_WITH_KEY)
    if read_with is not None and not isinstance(read_with, dict):
        logger.warning(
            "Ignoring %s of %s in STATE: %s, not an object",
            READ_WITH_KEY,
            SERIES_STREAM,
            _kind(read_with),
        )
        stream_state.pop(READ_WITH_KEY)
