"""HTTP behaviour: segments list, report validation, auth, agreement with the ground truth."""

from __future__ import annotations

from datetime import datetime

import pytest
import requests

from klaviyo_standin import (
    DEFAULT_API_KEY,
    DEFAULT_SCOPELESS_API_KEY,
    StandinServer,
    Window,
)

from .conftest import HEADERS, SERIES, VALUES, get, post, report_body, settings


def _error(response, status):
    assert response.status_code == status, response.text
    error = response.json()["errors"][0]
    assert set(error) >= {"id", "status", "code", "title", "detail", "source", "links", "meta"}
    assert error["status"] == status
    return error


# ----- segments -------------------------------------------------------------------------------
def test_pagination_follows_absolute_next_links(server):
    with StandinServer(settings(segment_count=25)) as srv:
        url, seen, pages = srv.url + "/api/segments", [], 0
        while url:
            assert url.startswith("http://127.0.0.1:")
            body = requests.get(url, headers=HEADERS, timeout=10).json()
            seen += [row["id"] for row in body["data"]]
            url = body["links"]["next"]
            pages += 1
        assert pages == 3
        assert seen == srv.account.segment_ids()
        assert "page%5Bcursor%5D=" in get(srv, "/api/segments").json()["links"]["next"]


def test_page_size(server):
    body = get(server, "/api/segments", {"page[size]": "5"}).json()
    assert len(body["data"]) == 5
    assert "page%5Bsize%5D=5" in body["links"]["next"]
    second = requests.get(body["links"]["next"], headers=HEADERS, timeout=10).json()
    assert [r["id"] for r in second["data"]] == server.account.segment_ids()[5:10]
    error = _error(get(server, "/api/segments", {"page[size]": "11"}), 400)
    assert error["code"] == "invalid"
    assert error["source"] == {"parameter": "page[size]"}
    assert _error(get(server, "/api/segments", {"page[cursor]": "garbage!"}), 400)["source"] == {
        "parameter": "page[cursor]"
    }


def test_segment_resource_shape(server):
    row = get(server, "/api/segments").json()["data"][0]
    assert row["type"] == "segment"
    assert set(row["attributes"]) == {
        "name",
        "definition",
        "created",
        "updated",
        "is_active",
        "is_processing",
        "is_starred",
    }
    assert row["links"]["self"].endswith(f"/api/segments/{row['id']}")
    assert row["relationships"] == {}
    one = get(server, f"/api/segments/{row['id']}").json()["data"]
    assert one["attributes"] == row["attributes"]
    assert _error(get(server, "/api/segments/NOPE00"), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("filter_text", "predicate"),
    [
        ("equals(is_active,true)", lambda r: r["is_active"]),
        ("equals(is_active,false)", lambda r: not r["is_active"]),
        ("equals(is_starred,true)", lambda r: r["is_starred"]),
        ("greater-than(created,2024-01-01T00:00:00Z)", lambda r: r["created"] > "2024-01-01"),
        ("greater-than(updated,2025-01-01T00:00:00+00:00)", lambda r: r["updated"] > "2025-01-01"),
        ('equals(name,"VIP customers")', lambda r: r["name"] == "VIP customers"),
    ],
)
def test_segment_filters(server, filter_text, predicate):
    expected = [r["id"] for r in server.account.segments() if predicate(r)]
    got, url, params = [], server.url + "/api/segments", {"filter": filter_text}
    while url:
        body = requests.get(url, params=params, headers=HEADERS, timeout=10).json()
        got += [r["id"] for r in body["data"]]
        url, params = body["links"]["next"], None
    assert got == expected
    assert expected


def test_segment_id_filters(server):
    ids = server.account.segment_ids()
    body = get(
        server, "/api/segments", {"filter": f'any(id,["{ids[3]}","{ids[1]}","zzzzzz"])'}
    ).json()
    assert [r["id"] for r in body["data"]] == [ids[1], ids[3]]
    body = get(server, "/api/segments", {"filter": f'equals(id,"{ids[2]}")'}).json()
    assert [r["id"] for r in body["data"]] == [ids[2]]


@pytest.mark.parametrize(
    "filter_text",
    [
        "equals(profile_count,3)",
        "less-than(created,2024-01-01T00:00:00Z)",
        "equals(is_active,",
        "nonsense",
        'equals(is_active,"yes")',
    ],
)
def test_bad_segment_filters(server, filter_text):
    error = _error(get(server, "/api/segments", {"filter": filter_text}), 400)
    assert error["source"] == {"parameter": "filter"}


def test_sparse_fieldsets(server):
    body = get(server, "/api/segments", {"fields[segment]": "name,created"}).json()
    assert all(set(r["attributes"]) == {"name", "created"} for r in body["data"])
    assert "fields%5Bsegment%5D=name%2Ccreated" in body["links"]["next"]
    assert _error(get(server, "/api/segments", {"fields[segment]": "name,bogus"}), 400)[
        "source"
    ] == {"parameter": "fields[segment]"}


# ----- auth, revision, routing -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "not_authenticated"),
        ("Klaviyo-API-Key pk_wrong", 401, "not_authenticated"),
        (f"Bearer {DEFAULT_API_KEY}", 401, "not_authenticated"),
        (f"Klaviyo-API-Key {DEFAULT_SCOPELESS_API_KEY}", 403, "permission_denied"),
    ],
)
@pytest.mark.parametrize("path", ["/api/segments", SERIES])
def test_auth(server, authorization, status, code, path):
    headers = {k: v for k, v in HEADERS.items() if k != "Authorization"}
    if authorization:
        headers["Authorization"] = authorization
    if path == SERIES:
        response = post(server, path, report_body(), headers=headers)
    else:
        response = get(server, path, headers=headers)
    assert _error(response, status)["code"] == code
    assert "pk_" not in response.text


@pytest.mark.parametrize("revision", [None, "", "2026-10", "latest", "2026-10-15.beta"])
def test_revision_required(server, revision):
    headers = {k: v for k, v in HEADERS.items() if k != "revision"}
    if revision is not None:
        headers["revision"] = revision
    error = _error(get(server, "/api/segments", headers=headers), 400)
    assert error["code"] == "invalid"


def test_revision_pre_accepted(server):
    assert (
        get(server, "/api/segments", headers={**HEADERS, "revision": "2024-07-15.pre"}).status_code
        == 200
    )


def test_routing(server):
    assert _error(get(server, "/api/flows"), 404)["code"] == "not_found"
    assert _error(get(server, SERIES), 405)["code"] == "method_not_allowed"
    assert _error(post(server, "/api/segments", {}), 405)["code"] == "method_not_allowed"
    assert get(server, "/api/segments/").status_code == 200
    assert post(server, SERIES + "/", report_body()).status_code == 200


def test_custom_key_and_no_key_leak():
    key = "pk_custom_secret_999"
    with StandinServer(settings(api_key=key, verbose=True)) as srv:
        assert get(srv, "/api/segments").status_code == 401
        ok = get(
            srv, "/api/segments", headers={**HEADERS, "Authorization": f"Klaviyo-API-Key {key}"}
        )
        assert ok.status_code == 200
        assert key not in ok.text
        assert key not in repr(srv.log)


# ----- report validation -----------------------------------------------------------------------
def _ids(server, n):
    return server.account.segment_ids()[:n]


BAD_BODIES = [
    # (id, kind, body mutation, pointer)
    ("no data", "series", lambda b: b.clear(), "/data"),
    (
        "wrong type",
        "series",
        lambda b: b["data"].update(type="segment-values-report"),
        "/data/type",
    ),
    ("no attributes", "series", lambda b: b["data"].pop("attributes"), "/data/attributes"),
    (
        "unknown attribute",
        "series",
        lambda b: b["data"]["attributes"].update(group_by=["x"]),
        "/data/attributes/group_by",
    ),
    (
        "no statistics",
        "series",
        lambda b: b["data"]["attributes"].pop("statistics"),
        "/data/attributes/statistics",
    ),
    (
        "empty statistics",
        "series",
        lambda b: b["data"]["attributes"].update(statistics=[]),
        "/data/attributes/statistics",
    ),
    (
        "bad statistic",
        "values",
        lambda b: b["data"]["attributes"].update(statistics=["total_members", "open_rate"]),
        "/data/attributes/statistics/1",
    ),
    (
        "no interval",
        "series",
        lambda b: b["data"]["attributes"].pop("interval"),
        "/data/attributes/interval",
    ),
    (
        "bad interval",
        "series",
        lambda b: b["data"]["attributes"].update(interval="yearly"),
        "/data/attributes/interval",
    ),
    (
        "interval on values",
        "values",
        lambda b: b["data"]["attributes"].update(interval="daily"),
        "/data/attributes/interval",
    ),
    (
        "no timeframe",
        "values",
        lambda b: b["data"]["attributes"].pop("timeframe"),
        "/data/attributes/timeframe",
    ),
    (
        "key and range",
        "values",
        lambda b: b["data"]["attributes"]["timeframe"].update(
            start="2025-01-01T00:00:00+00:00", end="2025-01-02T00:00:00+00:00"
        ),
        "/data/attributes/timeframe",
    ),
    (
        "empty timeframe",
        "values",
        lambda b: b["data"]["attributes"].update(timeframe={}),
        "/data/attributes/timeframe",
    ),
    (
        "start only",
        "values",
        lambda b: b["data"]["attributes"].update(timeframe={"start": "2025-01-01T00:00:00+00:00"}),
        "/data/attributes/timeframe",
    ),
    (
        "bad key",
        "values",
        lambda b: b["data"]["attributes"].update(timeframe={"key": "last_2_days"}),
        "/data/attributes/timeframe/key",
    ),
    (
        "no offset",
        "values",
        lambda b: b["data"]["attributes"].update(
            timeframe={"start": "2025-01-01T00:00:00", "end": "2025-01-02T00:00:00+00:00"}
        ),
        "/data/attributes/timeframe/start",
    ),
    (
        "bad end",
        "values",
        lambda b: b["data"]["attributes"].update(
            timeframe={"start": "2025-01-01T00:00:00+00:00", "end": "soon"}
        ),
        "/data/attributes/timeframe/end",
    ),
    (
        "end before start",
        "values",
        lambda b: b["data"]["attributes"].update(
            timeframe={"start": "2025-01-02T00:00:00+00:00", "end": "2025-01-01T00:00:00+00:00"}
        ),
        "/data/attributes/timeframe/end",
    ),
    (
        "over a year",
        "values",
        lambda b: b["data"]["attributes"].update(
            timeframe={"start": "2024-01-01T00:00:00+00:00", "end": "2025-01-02T00:00:00+00:00"}
        ),
        "/data/attributes/timeframe",
    ),
    (
        "hourly > 7 days",
        "series",
        lambda b: b["data"]["attributes"].update(
            interval="hourly",
            timeframe={"start": "2025-01-01T00:00:00+00:00", "end": "2025-01-08T01:00:00+00:00"},
        ),
        "/data/attributes/interval",
    ),
    (
        "daily > 60 days",
        "series",
        lambda b: b["data"]["attributes"].update(timeframe={"key": "last_90_days"}),
        "/data/attributes/interval",
    ),
    (
        "monthly > 52 weeks",
        "series",
        lambda b: b["data"]["attributes"].update(
            interval="monthly", timeframe={"key": "last_365_days"}
        ),
        "/data/attributes/interval",
    ),
    (
        "filter field",
        "values",
        lambda b: b["data"]["attributes"].update(filter='equals(list_id,"abc")'),
        "/data/attributes/filter",
    ),
    (
        "filter operator",
        "values",
        lambda b: b["data"]["attributes"].update(filter='contains(segment_id,"abc")'),
        "/data/attributes/filter",
    ),
    (
        "filter twice",
        "values",
        lambda b: b["data"]["attributes"].update(
            filter='equals(segment_id,"a"),equals(segment_id,"b")'
        ),
        "/data/attributes/filter",
    ),
    (
        "filter syntax",
        "values",
        lambda b: b["data"]["attributes"].update(filter='any(segment_id,["a"'),
        "/data/attributes/filter",
    ),
    (
        "filter empty any",
        "values",
        lambda b: b["data"]["attributes"].update(filter="any(segment_id,[])"),
        "/data/attributes/filter",
    ),
    (
        "filter not string",
        "values",
        lambda b: b["data"]["attributes"].update(filter=["a"]),
        "/data/attributes/filter",
    ),
    (
        "101 ids",
        "values",
        lambda b: b["data"]["attributes"].update(
            filter="any(segment_id,[{}])".format(",".join(f'"id{i:03d}"' for i in range(101)))
        ),
        "/data/attributes/filter",
    ),
]


@pytest.mark.parametrize(
    ("name", "kind", "mutate", "pointer"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_report_validation(server, name, kind, mutate, pointer):
    body = report_body(kind)
    mutate(body)
    error = _error(post(server, SERIES if kind == "series" else VALUES, body), 400)
    assert error["code"] == "invalid"
    assert error["title"] == "Invalid input."
    assert error["source"] == {"pointer": pointer}


def test_before_june_2023_error(server):
    body = report_body(
        "values",
        timeframe={"start": "2023-05-01T00:00:00+00:00", "end": "2023-07-01T00:00:00+00:00"},
    )
    error = _error(post(server, VALUES, body), 400)
    assert error["detail"] == "Cannot query for segment data before June 1st, 2023"
    assert error["source"] == {"pointer": "/data/attributes/timeframe/start"}


def test_invalid_json_body(server):
    response = requests.post(server.url + VALUES, data=b"{not json", headers=HEADERS, timeout=10)
    assert _error(response, 400)["code"] == "invalid"


def test_hundred_ids_allowed_unknown_omitted():
    with StandinServer(settings(segment_count=120)) as srv:
        ids = [*srv.account.segment_ids()[:99], "zzzzzz"]
        flt = "any(segment_id,[{}])".format(",".join(f'"{i}"' for i in ids))
        body = post(srv, VALUES, report_body("values", filter=flt)).json()
        got = [r["groupings"]["segment_id"] for r in body["data"]["attributes"]["results"]]
        assert got == ids[:99]


def test_no_filter_returns_all_and_equals_filter(server):
    body = post(server, VALUES, report_body("values")).json()
    assert [
        r["groupings"]["segment_id"] for r in body["data"]["attributes"]["results"]
    ] == server.account.segment_ids()
    one = server.account.segment_ids()[4]
    body = post(server, VALUES, report_body("values", filter=f'equals(segment_id,"{one}")')).json()
    assert [r["groupings"]["segment_id"] for r in body["data"]["attributes"]["results"]] == [one]


# ----- report answers ----------------------------------------------------------------------------
def test_series_response_matches_truth(ny_server):
    ids = _ids(ny_server, 5)
    flt = "any(segment_id,[{}])".format(",".join(f'"{i}"' for i in ids))
    timeframe = {"start": "2025-02-20T00:00:00+00:00", "end": "2025-04-20T00:00:00+00:00"}
    body = post(ny_server, SERIES, report_body(timeframe=timeframe, filter=flt)).json()
    assert body["data"]["type"] == "segment-series-report"
    assert body["links"]["self"].endswith(SERIES)
    attributes = body["data"]["attributes"]
    assert attributes["date_times"][0] == "2025-02-20T00:00:00-05:00"
    assert "2025-03-10T00:00:00-04:00" in attributes["date_times"]
    for result in attributes["results"]:
        truth = ny_server.account.series(
            result["groupings"]["segment_id"], "daily", datetime(2025, 2, 20), datetime(2025, 4, 20)
        )
        assert [d for d, _ in truth] == attributes["date_times"]
        for stat, column in result["statistics"].items():
            assert column == [row[stat] for _, row in truth]


def test_only_requested_statistics(server):
    body = post(server, SERIES, report_body(statistics=["members_added"])).json()
    assert all(
        set(r["statistics"]) == {"members_added"} for r in body["data"]["attributes"]["results"]
    )
    body = post(
        server, VALUES, report_body("values", statistics=["total_members", "net_members_changed"])
    ).json()
    assert all(
        set(r["statistics"]) == {"total_members", "net_members_changed"}
        for r in body["data"]["attributes"]["results"]
    )


def test_values_match_truth_and_series(ny_server):
    account = ny_server.account
    for key in ("last_30_days", "yesterday", "this_month", "last_year", "today"):
        body = post(ny_server, VALUES, report_body("values", timeframe={"key": key})).json()
        for result in body["data"]["attributes"]["results"]:
            seg_id = result["groupings"]["segment_id"]
            assert result["statistics"] == account.values(seg_id, key)
    seg_id = account.segment_ids()[0]
    start, end = datetime(2025, 6, 3, 8), datetime(2025, 7, 20, 12)
    values = account.values(seg_id, Window(start, end))
    series = account.series(seg_id, "daily", start, end)
    assert values["members_added"] == sum(r["members_added"] for _, r in series)
    assert values["total_members"] == series[-1][1]["total_members"]


def test_future_end_is_clamped_to_now(server):
    timeframe = {"start": "2026-11-20T00:00:00+00:00", "end": "2026-12-20T00:00:00+00:00"}
    attributes = post(server, SERIES, report_body(timeframe=timeframe)).json()["data"]["attributes"]
    assert attributes["date_times"][-1] == "2026-11-28T00:00:00+00:00"
    assert len(attributes["date_times"]) == 9


def test_end_inclusive_over_http():
    timeframe = {"start": "2025-05-01T00:00:00+00:00", "end": "2025-05-08T00:00:00+00:00"}
    for inclusive, count in ((True, 8), (False, 7)):
        with StandinServer(settings(end_inclusive=inclusive)) as srv:
            attributes = post(srv, SERIES, report_body(timeframe=timeframe)).json()["data"][
                "attributes"
            ]
            assert len(attributes["date_times"]) == count


def test_dst_hourly_over_http(ny_server):
    timeframe = {"start": "2025-11-02T00:00:00+00:00", "end": "2025-11-02T23:59:59+00:00"}
    attributes = post(
        ny_server, SERIES, report_body(timeframe=timeframe, interval="hourly")
    ).json()["data"]["attributes"]
    assert len(attributes["date_times"]) == 25
    assert attributes["date_times"][1:3] == [
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:00:00-05:00",
    ]


def test_request_log(server):
    server.clear_log()
    post(server, SERIES, report_body())
    post(server, VALUES, report_body("values", statistics=["bogus"]))
    get(server, "/api/segments", {"page[size]": "2"})
    log = server.log
    assert [(e.method, e.path, e.status) for e in log] == [
        ("POST", SERIES, 200),
        ("POST", VALUES, 400),
        ("GET", "/api/segments", 200),
    ]
    assert log[0].body["data"]["type"] == "segment-series-report"
    assert log[2].query == {"page[size]": ["2"]}
    assert [e.path for e in server.report_calls()] == [SERIES]
    assert DEFAULT_API_KEY not in repr(log)
    server.clear_log()
    assert server.log == []
