"""The record of recent report calls (ledger.py): counting, pruning, availability, STATE form."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_klaviyo_segments import ledger
from tap_klaviyo_segments.ledger import WINDOW, CallRecord

NOW = datetime(2026, 11, 28, 10, 30, 12, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


def test_calls_are_counted_per_minute_stamped_with_its_end():
    record = CallRecord().add(NOW).add(NOW + timedelta(seconds=30)).add(NOW + timedelta(seconds=50))
    assert record.entries == (
        (datetime(2026, 11, 28, 10, 31, tzinfo=timezone.utc), 2),
        (datetime(2026, 11, 28, 10, 32, tzinfo=timezone.utc), 1),
    )
    on_the_minute = CallRecord().add(datetime(2026, 11, 28, 10, 31, tzinfo=timezone.utc))
    assert on_the_minute.entries[0][0] == datetime(2026, 11, 28, 10, 31, tzinfo=timezone.utc)
    # another offset is the same instant, stored in UTC
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert CallRecord().add(local).entries == CallRecord().add(NOW).entries


def test_a_call_counts_for_24_hours_from_the_end_of_its_minute():
    record = CallRecord().add(NOW, 3)
    stamp = record.entries[0][0]
    assert record.used(NOW) == 3
    assert record.used(stamp + WINDOW - timedelta(microseconds=1)) == 3
    assert record.used(stamp + WINDOW) == 0
    assert record.pruned(stamp + WINDOW - timedelta(microseconds=1)) == record
    assert record.pruned(stamp + WINDOW) == CallRecord()


def test_calls_left_and_next_call():
    record = CallRecord().add(NOW - timedelta(hours=5), 2).add(NOW - timedelta(hours=1), 3)
    assert record.calls_left(NOW, 10) == 5
    assert record.next_call_at(NOW, 10) == NOW
    assert record.calls_left(NOW, 5) == 0
    first = record.entries[0][0]
    assert record.next_call_at(NOW, 5) == first + WINDOW
    assert record.calls_left(NOW, 3) == 0  # more used than the budget (it was lowered)
    assert record.next_call_at(NOW, 3) == record.entries[1][0] + WINDOW
    assert CallRecord().next_call_at(NOW, 0) is None


def test_when_n_more_calls_all_fit():
    record = CallRecord.from_entries(
        [(NOW - timedelta(hours=20), 4), (NOW - timedelta(hours=10), 4), (NOW, 2)]
    )
    stamps = [stamp for stamp, _ in record.entries]
    assert record.when_available(0, NOW, 10) == NOW
    assert record.when_available(-3, NOW, 10) == NOW
    assert record.when_available(1, NOW, 10) == stamps[0] + WINDOW
    assert record.when_available(4, NOW, 10) == stamps[0] + WINDOW
    assert record.when_available(5, NOW, 10) == stamps[1] + WINDOW
    assert record.when_available(10, NOW, 10) == stamps[2] + WINDOW
    assert record.when_available(11, NOW, 10) is None


@st.composite
def records(draw):
    offsets = draw(st.lists(st.integers(-30 * 3600, 600), max_size=40))
    counts = draw(st.lists(st.integers(0, 9), min_size=len(offsets), max_size=len(offsets)))
    return CallRecord.from_entries(
        (NOW + timedelta(seconds=o), c) for o, c in zip(offsets, counts, strict=True)
    )


@settings(max_examples=300, deadline=None)
@given(record=records(), calls=st.integers(0, 60), limit=st.integers(0, 60))
def test_when_available_is_the_first_instant_with_room(record, calls, limit):
    at = record.when_available(calls, NOW, limit)
    if calls > limit:
        assert at is None
        return
    assert at is not None
    assert at >= NOW
    assert record.calls_left(at, limit) >= calls
    # never later than needed: just before it, there was not room yet (unless it is now)
    if at > NOW:
        assert record.calls_left(at - timedelta(microseconds=1), limit) < calls
    # adding the calls at that instant never puts more than the budget in any 24 hours
    after = record.add(at, calls)
    assert after.used(at) <= max(limit, record.used(at))


@settings(max_examples=200, deadline=None)
@given(record=records())
def test_state_form_round_trips_and_is_json(record):
    state = json.loads(json.dumps(record.to_state()))
    assert ledger.read(state) == CallRecord.from_entries(
        (stamp, calls) for stamp, calls in record.entries if calls > 0
    )
    checked, problem = ledger.check(state)
    assert problem is None
    assert checked == record.to_state()


def test_a_backfill_day_stays_compact():
    """225 calls at Klaviyo's pace (30 s apart) are 113 minutes, and a day later none."""
    record = CallRecord()
    for k in range(225):
        record = record.add(NOW + timedelta(seconds=30 * k))
    assert record.used(NOW + timedelta(hours=2)) == 225
    assert len(record.entries) == 113
    assert len(json.dumps(record.to_state())) < 5000
    assert record.pruned(NOW + timedelta(hours=26)).entries == ()


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("yesterday", 0),
        ([["2026-11-28T10:31:00+00:00", 2]], 0),  # a bare list, not the object
        ({"calls": "many"}, 0),
        ({"calls": [["2026-11-28T10:31:00+00:00", 2], ["not a time", 1]]}, 1),
        ({"calls": [["2026-11-28T10:31:00", 2]]}, 0),  # no offset: ambiguous
        ({"calls": [["2026-11-28T10:31:00+00:00", -1]]}, 0),
        ({"calls": [["2026-11-28T10:31:00+00:00", 1.5]]}, 0),
        ({"calls": [["2026-11-28T10:31:00+00:00", True]]}, 0),
        ({"calls": [["2026-11-28T10:31:00+00:00"]]}, 0),
        ({"calls": [], "window": "calendar"}, 0),
        ({"calls": [["2026-11-28T10:31:00+00:00", 2]], "unreadable": True}, 1),
    ],
)
def test_a_broken_record_is_kept_marked_and_resolved_as_the_whole_budget(raw, kept):
    checked, problem = ledger.check(raw)
    assert problem
    assert checked["unreadable"] is True
    assert len(checked["calls"]) == kept
    record, notes = ledger.resolve(checked, NOW, 225)
    assert record.calls_left(NOW, 225) == 0
    assert record.next_call_at(NOW, 225) == record.entries[-1][0] + WINDOW
    assert any("could not be read" in note for note in notes)
    # once resolved, the record is ordinary again: the next run reads it without a warning
    assert ledger.check(record.to_state())[1] is None


def test_calls_dated_after_now_count_as_made_now():
    future = {"calls": [["2099-01-01T00:00:00+00:00", 3], ["2026-11-28T09:00:00+00:00", 1]]}
    record, notes = ledger.resolve(future, NOW, 10)
    assert record.used(NOW) == 4
    assert record.next_call_at(NOW, 4) == datetime(2026, 11, 28, 9, tzinfo=timezone.utc) + WINDOW
    assert record.used(NOW + WINDOW + MINUTE) == 0, "a wrong date blocks a day at most"
    assert any("after now" in note for note in notes)


def test_resolve_prunes_what_no_longer_counts():
    stored = CallRecord().add(NOW - timedelta(hours=30), 5).add(NOW - timedelta(hours=2)).to_state()
    record, notes = ledger.resolve(stored, NOW, 225)
    assert notes == []
    assert record.used(NOW) == 1
    assert len(record.entries) == 1
    assert ledger.resolve(None, NOW, 225) == (CallRecord(), [])
