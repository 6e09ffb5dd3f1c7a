"""The user-analytics pipeline materialized in process against a hand-made fixture whose
expected values are computed by hand below."""

import pytest

from dataeng_assets.cli import run_job
from dataeng_assets.defs.analytics.assets import month_bounds
from dataeng_assets.lib import env
from dataeng_assets.lib.lake import Lake
from dataeng_assets.lib.warehouse import Warehouse
from dataeng_assets_tests.conftest import event, write_drop

D1, D2 = "2024-01-14", "2024-01-15"

DAY1 = [
    event("e1", 1, "2024-01-14T08:00:00Z"),
    event("e2", 1, "2024-01-14T08:01:00Z", "add_to_cart", items=[1, 2]),
    event("e3", 1, "2024-01-14T08:05:00Z", "purchase", items=[3], amount=10.5),
    event("e4", 2, "2024-01-14T21:00:00Z", "click"),
    event("e1", 1, "2024-01-14T08:00:00Z"),                    # duplicate of e1
    event("e5", 2, "2024-01-13T23:59:00Z"),                    # late: belongs to the 13th
    '{"event_id": "e6", "user_id": 3, "event_type": "cl',      # truncated JSON
    event("e7", "abc", "2024-01-14T10:00:00Z"),                # user_id is not a number
    "",                                                        # blank line: not a record
]
DAY2 = [
    event("f1", 1, "2024-01-15T09:00:00Z"),
    event("f2", 3, "2024-01-15T09:00:00Z", "add_to_cart", items=[5]),
    event("f3", 3, "2024-01-15T09:10:00Z"),
]
# Hand-computed: day 1 keeps e1..e4 (u1: 3 events, 3 items; u2: 1 event, 0 items).
DAILY_EXPECTED = {
    (1, D1): (3, 3), (2, D1): (1, 0),
    (1, D2): (1, 0), (3, D2): (2, 1),
}
MONTHLY_EXPECTED = {1: (4, 3, 2), 2: (1, 0, 1), 3: (2, 1, 1)}


def landing() -> "Path":  # noqa: F821
    return env.data_home() / "landing"


def daily() -> dict:
    with Warehouse(env.warehouse_database()).session() as s:
        rows = s.execute("SELECT user_id, date, event_count, total_items FROM analytics.user_daily_metrics")
    return {(u, d.isoformat()): (e, i) for u, d, e, i in rows}


def monthly() -> dict:
    with Warehouse(env.warehouse_database()).session() as s:
        rows = s.execute("SELECT user_id, total_events, total_items, active_days FROM analytics.user_monthly_metrics")
    return {u: (e, i, a) for u, e, i, a in rows}


@pytest.fixture
def drops(data_home):
    write_drop(landing(), D1, DAY1)
    write_drop(landing(), D2, DAY2)


def materialize(first: str, last: str | None = None):
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as instance:
        return run_job("user_analytics_job", first, last or first, instance)


def check(result, asset: str, name: str):
    [ev] = [e for e in result.get_asset_check_evaluations()
            if e.asset_key.to_user_string() == asset and e.check_name == name]
    return ev


def test_two_partitions_match_the_hand_computed_fixture(drops, warehouse_url):
    result = materialize(D1, D2)
    assert result.success
    assert daily() == DAILY_EXPECTED
    assert monthly() == MONTHLY_EXPECTED
    gate = check(result, "lake/analytics/user_metrics", "user_metrics_gate")
    assert gate.passed and gate.metadata["rows_checked"].value == 4
    assert check(result, "analytics/user_daily_metrics", "user_daily_metrics_gate").passed


def test_bad_lines_are_quarantined_with_reasons_and_counted(drops):
    result = materialize(D1)
    assert result.success
    q = Lake(env.lake_location()).handle(["lake", "events", "raw_events_quarantine"], [D1]).to_table()
    reasons = sorted(q.column("reason").to_pylist())
    assert reasons == ["duplicate_event_id", "event_date_outside_partition", "invalid_user_id", "malformed_json"]
    truncated = [r for r in q.to_pylist() if r["reason"] == "malformed_json"][0]
    assert truncated["raw_line"] == DAY1[6] and truncated["source_file"].endswith(f"date={D1}/part-00000.jsonl")
    md = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    raw = md["lake/events/raw_events"]
    assert raw["lines_read"].value == 8 and raw["events"].value == 4 and raw["quarantined"].value == 4
    assert raw["row_count"].value == 4
    assert md["lake/events/raw_events_quarantine"]["by_reason"].value == {
        "duplicate_event_id": 1, "event_date_outside_partition": 1, "invalid_user_id": 1, "malformed_json": 1,
    }


def test_gate_failure_stops_the_warehouse_load_in_the_same_run(drops, warehouse_url):
    assert materialize(D1).success
    before = daily()
    write_drop(landing(), D1, DAY1[:4] + [event("n1", None, "2024-01-14T12:00:00Z")])
    result = materialize(D1)
    assert not result.success
    gate = check(result, "lake/analytics/user_metrics", "user_metrics_gate")
    assert not gate.passed and gate.severity.value == "ERROR"
    [failure] = gate.metadata["failures"].value
    assert {"column": "user_id", "check": "not_null", "partition": D1, "failing_rows": 1}.items() <= failure.items()
    assert result.is_node_untouched("analytics__user_daily_metrics")
    assert result.is_node_untouched("analytics__user_monthly_metrics")
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "analytics/user_daily_metrics" not in materialized
    assert daily() == before  # the warehouse still holds the last good load


def test_monthly_upsert_after_rerun_and_out_of_order_days(drops, warehouse_url):
    assert materialize(D2).success  # the later day first
    assert monthly() == {1: (1, 0, 1), 3: (2, 1, 1)}
    assert materialize(D1).success
    assert monthly() == MONTHLY_EXPECTED
    assert materialize(D1).success  # rerun: nothing added twice
    assert monthly() == MONTHLY_EXPECTED
    # The day is re-delivered without user 2: user 2 leaves the month, user 1 drops to 2 events.
    write_drop(landing(), D1, [event("e1", 1, "2024-01-14T08:00:00Z")])
    assert materialize(D1).success
    assert monthly() == {1: (2, 0, 2), 3: (2, 1, 1)}


def test_range_run_equals_partition_by_partition(drops, tmp_path, monkeypatch):
    assert materialize(D1, D2).success
    by_range = (daily(), monthly())
    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", f"duckdb://{tmp_path / 'other.duckdb'}")
    assert materialize(D1).success and materialize(D2).success
    assert (daily(), monthly()) == by_range


def test_missing_drop_fails_with_a_clear_message(data_home):
    write_drop(landing(), D1, DAY2, marker=False)
    result = materialize(D1)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no complete drop for 2024-01-14" in failure.event_specific_data.error.to_string()


def test_s3_lake_and_landing(drops, s3_bucket, monkeypatch):
    """The same pipeline with the lake and the landing zone on S3."""
    from dataeng_assets.lib.env import Location

    local = Lake(Location("x", str(landing()), "local", str(landing())))
    monkeypatch.setenv("DATAENG_LANDING_URL", f"s3://{s3_bucket}/landing")
    monkeypatch.setenv("DATAENG_LAKE_URL", f"s3://{s3_bucket}/lake")
    remote = Lake(env.landing_location())
    for day in (D1, D2):
        remote.put_folder(str(local.partition_dir(["events"], day)), f"events/date={day}", marker="_SUCCESS")
    assert materialize(D1, D2).success
    assert daily() == DAILY_EXPECTED
    assert Lake(env.lake_location()).handle(["lake", "events", "raw_events"], [D1, D2]).to_table().num_rows == 7


@pytest.mark.parametrize(
    "first,end,expected",
    [("2024-01-14", "2024-01-15", ("2024-01-01", "2024-02-01")),
     ("2024-01-30", "2024-02-02", ("2024-01-01", "2024-03-01")),
     ("2024-12-31", "2025-01-01", ("2024-12-01", "2025-01-01"))],
)
def test_month_bounds(first, end, expected):
    from datetime import date

    got = month_bounds(date.fromisoformat(first), date.fromisoformat(end))
    assert tuple(d.isoformat() for d in got) == expected
