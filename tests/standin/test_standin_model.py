"""Ground-truth model: determinism, consistency across intervals, timeframes, DST, `now`."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from klaviyo_standin import Account, TimeframeError, Window, resolve_key
from klaviyo_standin.timeframes import Alignment, check_window, custom_window

from .conftest import NOW

STATS = ("total_members", "members_added", "members_removed", "net_members_changed")


@pytest.fixture(scope="module")
def ny():
    return Account(12, 7, "America/New_York", NOW)


def _sum(rows, key):
    return sum(row[key] for _, row in rows)


def test_same_seed_same_data_and_different_seed_differs():
    a, b, c = Account(12, 3, "UTC", NOW), Account(12, 3, "UTC", NOW), Account(12, 4, "UTC", NOW)
    assert a.segments() == b.segments()
    assert a.segments() != c.segments()
    window = (datetime(2025, 1, 1), datetime(2025, 2, 15))
    for seg_id in a.segment_ids():
        assert a.series(seg_id, "daily", *window) == b.series(seg_id, "daily", *window)


def test_segments_shape():
    account = Account(12, 1, "UTC", NOW)
    rows = account.segments()
    assert len(rows) == 12
    assert len({row["id"] for row in rows}) == 12
    assert all(len(row["id"]) == 6 and row["id"].isalnum() for row in rows)
    assert sum(not row["is_active"] for row in rows) == 2
    assert any(row["is_starred"] for row in rows)
    assert any(row["definition"] is None for row in rows)
    created = [row["created"] for row in rows]
    assert created == sorted(created)
    assert all(c.endswith("+00:00") and "2023-01-01" <= c < "2026" for c in created)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2025, 10, 20), datetime(2025, 11, 12)),  # crosses the fall-back DST change
        (datetime(2025, 2, 25, 10, 30), datetime(2025, 3, 15, 17, 45)),  # cut mid-hour, spring DST
    ],
)
@pytest.mark.parametrize("end_inclusive", [True, False])
def test_intervals_agree(ny, start, end, end_inclusive):
    for seg_id in ny.segment_ids()[:6]:
        by = {
            iv: ny.series(seg_id, iv, start, end, end_inclusive=end_inclusive)
            for iv in ("hourly", "daily", "weekly", "monthly")
        }
        values = ny.values(seg_id, (start, end), end_inclusive=end_inclusive)
        for interval, rows in by.items():
            for key in ("members_added", "members_removed", "net_members_changed"):
                assert _sum(rows, key) == values[key], (interval, key)
            assert rows[-1][1]["total_members"] == values["total_members"]
            previous = ny.total_at(seg_id, start - timedelta(seconds=1))
            for _, row in rows:
                assert row["net_members_changed"] == row["members_added"] - row["members_removed"]
                assert row["total_members"] == previous + row["net_members_changed"]
                previous = row["total_members"]
        # each daily bucket is the sum of its hourly buckets
        daily = by["daily"]
        for i, (label, row) in enumerate(daily):
            day_start = datetime.fromisoformat(label)
            next_label = datetime.fromisoformat(daily[i + 1][0]) if i + 1 < len(daily) else None
            hours = [
                r
                for lab, r in by["hourly"]
                if datetime.fromisoformat(lab) >= day_start
                and (next_label is None or datetime.fromisoformat(lab) < next_label)
            ]
            assert sum(r["members_added"] for r in hours) == row["members_added"]


def test_bucket_labels_and_alignment(ny):
    seg_id = ny.segment_ids()[0]
    weekly = ny.series(seg_id, "weekly", datetime(2025, 1, 15, 13), datetime(2025, 3, 1))
    assert [d for d, _ in weekly][:3] == [
        "2025-01-13T00:00:00-05:00",
        "2025-01-20T00:00:00-05:00",
        "2025-01-27T00:00:00-05:00",
    ]
    stepped = ny.series(
        seg_id,
        "weekly",
        datetime(2025, 1, 15, 13),
        datetime(2025, 3, 1),
        alignment=Alignment(week="start"),
    )
    assert [d for d, _ in stepped][:3] == [
        "2025-01-15T00:00:00-05:00",
        "2025-01-22T00:00:00-05:00",
        "2025-01-29T00:00:00-05:00",
    ]
    monthly = ny.series(seg_id, "monthly", datetime(2025, 1, 15), datetime(2025, 4, 10))
    assert [d for d, _ in monthly] == [
        "2025-01-15T00:00:00-05:00",
        "2025-02-01T00:00:00-05:00",
        "2025-03-01T00:00:00-05:00",
        "2025-04-01T00:00:00-04:00",
    ]
    hourly = ny.series(
        seg_id, "hourly", datetime(2025, 1, 15, 13, 20), datetime(2025, 1, 15, 15, 0)
    )
    assert [d for d, _ in hourly] == [
        "2025-01-15T13:00:00-05:00",
        "2025-01-15T14:00:00-05:00",
        "2025-01-15T15:00:00-05:00",
    ]


@pytest.mark.parametrize(
    ("day", "hours"), [(date(2025, 3, 9), 23), (date(2025, 11, 2), 25), (date(2025, 6, 1), 24)]
)
def test_dst_days_have_23_or_25_hourly_buckets(ny, day, hours):
    start = datetime(day.year, day.month, day.day)
    rows = ny.series(
        ny.segment_ids()[0], "hourly", start, start + timedelta(days=1), end_inclusive=False
    )
    assert len(rows) == hours
    assert len({d for d, _ in rows}) == hours


def test_end_inclusive_switch(ny):
    seg_id = ny.segment_ids()[0]
    start, end = datetime(2025, 5, 1), datetime(2025, 5, 8)
    inclusive = ny.series(seg_id, "daily", start, end, end_inclusive=True)
    exclusive = ny.series(seg_id, "daily", start, end, end_inclusive=False)
    assert len(inclusive) == 8
    assert len(exclusive) == 7
    assert inclusive[:7] == exclusive
    assert inclusive[-1][0] == "2025-05-08T00:00:00-04:00"
    # the bucket starting exactly at the end counts only the changes stamped at that instant
    first_hour = ny.series(seg_id, "hourly", end, end + timedelta(hours=1), end_inclusive=False)[0][
        1
    ]
    assert inclusive[-1][1]["members_added"] == first_hour["members_added"]
    assert len(ny.series(seg_id, "daily", "last_7_days", end_inclusive=True)) == 8
    assert len(ny.series(seg_id, "daily", "last_7_days", end_inclusive=False)) == 7


def test_nothing_after_now(ny):
    seg_id = ny.segment_ids()[0]
    rows = ny.series(seg_id, "hourly", datetime(2026, 11, 27, 0), datetime(2026, 12, 3))
    assert rows[-1][0] == "2026-11-28T10:00:00-05:00"
    assert len(rows) == 24 + 11
    daily = ny.series(seg_id, "daily", datetime(2026, 11, 20), datetime(2026, 12, 20))
    assert daily[-1][0] == "2026-11-28T00:00:00-05:00"
    assert daily[-1][1]["total_members"] == ny.total_at(seg_id, datetime(2030, 1, 1))
    assert ny.values(seg_id, "today")["members_added"] == _sum(rows[24:], "members_added")


def test_zero_before_creation_and_inactive_stop(ny):
    rows = {row["id"]: row for row in ny.segments()}
    late = next(r for r in ny.segments() if r["created"] > "2024-01-01")
    created = datetime.fromisoformat(late["created"]).astimezone(ny.tz).replace(tzinfo=None)
    before = ny.series(
        late["id"], "daily", created - timedelta(days=20), created - timedelta(days=1)
    )
    assert all(row["total_members"] == 0 and row["members_added"] == 0 for _, row in before)
    inactive = next(r for r in rows.values() if not r["is_active"])
    stopped = datetime.fromisoformat(inactive["updated"]).astimezone(ny.tz).replace(tzinfo=None)
    after = ny.series(
        inactive["id"], "daily", stopped + timedelta(days=1), stopped + timedelta(days=40)
    )
    assert all(row["members_added"] == row["members_removed"] == 0 for _, row in after)


def test_totals_never_negative(ny):
    for seg_id in ny.segment_ids():
        for _, total in ny.daily_totals(seg_id, date(2023, 6, 1), date(2026, 11, 28)):
            assert total >= 0


NOW_LOCAL = datetime(2026, 11, 28, 10, 30)  # a Saturday


@pytest.mark.parametrize(
    ("key", "start", "end"),
    [
        ("today", datetime(2026, 11, 28), NOW_LOCAL),
        ("yesterday", datetime(2026, 11, 27), datetime(2026, 11, 28)),
        ("last_7_days", datetime(2026, 11, 21), datetime(2026, 11, 28)),
        ("last_30_days", datetime(2026, 10, 29), datetime(2026, 11, 28)),
        ("last_90_days", datetime(2026, 8, 30), datetime(2026, 11, 28)),
        ("last_365_days", datetime(2025, 11, 28), datetime(2026, 11, 28)),
        ("this_week", datetime(2026, 11, 23), NOW_LOCAL),
        ("last_week", datetime(2026, 11, 16), datetime(2026, 11, 23)),
        ("this_month", datetime(2026, 11, 1), NOW_LOCAL),
        ("last_month", datetime(2026, 10, 1), datetime(2026, 11, 1)),
        ("last_3_months", datetime(2026, 8, 1), datetime(2026, 11, 1)),
        ("last_12_months", datetime(2025, 11, 1), datetime(2026, 11, 1)),
        ("this_year", datetime(2026, 1, 1), NOW_LOCAL),
        ("last_year", datetime(2025, 1, 1), datetime(2026, 1, 1)),
    ],
)
def test_timeframe_keys(key, start, end):
    assert resolve_key(key, NOW_LOCAL) == Window(start, end)
    check_window(resolve_key(key, NOW_LOCAL), None)


@pytest.mark.parametrize(
    ("start", "end", "interval", "pointer"),
    [
        (
            "2023-05-31T23:59:59+00:00",
            "2023-06-10T00:00:00+00:00",
            None,
            "/data/attributes/timeframe/start",
        ),
        (
            "2024-01-02T00:00:00+00:00",
            "2024-01-01T00:00:00+00:00",
            None,
            "/data/attributes/timeframe/end",
        ),
        (
            "2024-01-01T00:00:00+00:00",
            "2025-01-01T00:00:01+00:00",
            None,
            "/data/attributes/timeframe",
        ),
        (
            "2024-01-01T00:00:00+00:00",
            "2024-01-08T00:00:01+00:00",
            "hourly",
            "/data/attributes/interval",
        ),
        (
            "2024-01-01T00:00:00+00:00",
            "2024-03-01T00:00:01+00:00",
            "daily",
            "/data/attributes/interval",
        ),
        (
            "2024-01-01T00:00:00+00:00",
            "2024-12-30T00:00:01+00:00",
            "monthly",
            "/data/attributes/interval",
        ),
        # Klaviyo's own 400 for a weekly series over 52 weeks (see the API notes).
        (
            "2024-01-01T00:00:00+00:00",
            "2024-12-30T00:00:01+00:00",
            "weekly",
            "/data/attributes/interval",
        ),
        (
            "2024-01-01T00:00:00",
            "2024-01-02T00:00:00+00:00",
            None,
            "/data/attributes/timeframe/start",
        ),
        ("2024-01-01", "2024-01-02T00:00:00+00:00", None, "/data/attributes/timeframe/start"),
    ],
)
def test_window_errors(start, end, interval, pointer):
    with pytest.raises(TimeframeError) as info:
        check_window(custom_window(start, end), interval)
    assert info.value.pointer == pointer


@pytest.mark.parametrize(
    ("start", "end", "interval"),
    [
        ("2023-06-01T00:00:00-07:00", "2023-06-08T00:00:00Z", "hourly"),
        ("2024-01-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00", "daily"),
        ("2024-01-01T00:00:00+00:00", "2024-12-30T00:00:00+00:00", "monthly"),
        ("2024-01-01T00:00:00+00:00", "2024-12-30T00:00:00+00:00", "weekly"),
    ],
)
def test_window_limits_accepted(start, end, interval):
    check_window(custom_window(start, end), interval)


def test_offset_is_ignored():
    window = custom_window("2025-01-01T00:00:00+09:00", "2025-01-02T00:00:00-05:00")
    assert window == Window(datetime(2025, 1, 1), datetime(2025, 1, 2))


def test_future_timeframe_sees_nothing_after_now(ny):
    seg_id = ny.segment_ids()[0]
    future = (datetime(2026, 12, 1), datetime(2026, 12, 5))
    assert ny.series(seg_id, "daily", *future) == []
    values = ny.values(seg_id, future)
    assert values["members_added"] == values["members_removed"] == 0
    assert values["total_members"] == ny.total_at(seg_id, datetime(2026, 11, 28, 10, 30))


def test_live_clock_account():
    account = Account(3, 1, "UTC")
    seg_id = account.segment_ids()[0]
    rows = account.series(seg_id, "daily", "last_7_days")
    assert len(rows) == 8
    assert rows[-1][0].startswith(account.now_local().date().isoformat())


def test_data_does_not_depend_on_machine_timezone():
    from klaviyo_standin import model

    assert datetime.fromisoformat("2025-12-31T12:00:00+00:00").timestamp() == model.CREATED_END
