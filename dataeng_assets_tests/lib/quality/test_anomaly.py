"""Anomaly rules: z-scores against the history of earlier partitions, stored in the warehouse."""

import datetime as dt

import pytest

from dataeng_assets.lib import env
from dataeng_assets.lib.quality import history
from dataeng_assets.lib.quality.history import judge
from dataeng_assets.lib.warehouse import Warehouse

BASE = [100.0, 104.0, 98.0, 101.0, 97.0, 103.0, 99.0]


def test_spike_fails_and_normal_day_passes():
    assert not judge(500.0, BASE).passed  # a 5x spike
    assert judge(102.0, BASE).passed


def test_too_little_history_never_fails():
    verdict = judge(500.0, BASE[:3], min_history=7)
    assert verdict.passed and "learning: 3 of 7" in verdict.reason


def test_direction_and_threshold():
    assert judge(20.0, BASE, direction="spike").passed  # a drop, but only spikes are watched
    assert not judge(20.0, BASE, direction="drop").passed
    assert judge(106.0, BASE, z_threshold=3).passed and not judge(106.0, BASE, z_threshold=1).passed


def test_constant_history_flags_any_change():
    assert judge(5.0, [5.0] * 8).passed
    assert not judge(6.0, [5.0] * 8).passed


def row(day: dt.date, value: float) -> history.Row:
    return history.Row("lake.events.raw_events", "anomaly_row_count", "anomaly_row_count", day.isoformat(), day,
                       value, True, "warning", str(value), "", 0, "r1", dt.datetime.now(dt.timezone.utc))


@pytest.fixture
def session(warehouse_url):
    with Warehouse(env.warehouse_database()).session() as s:
        yield s


def test_baseline_is_ordered_by_partition_date_so_backfills_do_not_shift_it(session):
    start = dt.date(2024, 2, 1)
    recent = [row(start + dt.timedelta(days=i), v) for i, v in enumerate(BASE * 2)]  # 14 recent days
    with session.transaction():
        history.record(session, "lake.events.raw_events", recent)
    day = start + dt.timedelta(days=14)
    before = history.baseline(session, "lake.events.raw_events", "anomaly_row_count", day, 7, False)
    # a backfill of January, run later, with very different values
    old = [row(dt.date(2024, 1, 1) + dt.timedelta(days=i), 10_000.0) for i in range(20)]
    with session.transaction():
        history.record(session, "lake.events.raw_events", old)
    after = history.baseline(session, "lake.events.raw_events", "anomaly_row_count", day, 7, False)
    assert before == after and len(after) == 7 and after[0][0] == day - dt.timedelta(days=1)
    # and the backfilled days see only their own past
    jan10 = history.baseline(session, "lake.events.raw_events", "anomaly_row_count", dt.date(2024, 1, 10), 7, False)
    assert [v for _, v in jan10] == [10_000.0] * 7


def test_rerun_replaces_the_partition_and_same_weekday_filters(session):
    start = dt.date(2024, 2, 1)
    with session.transaction():
        history.record(session, "lake.events.raw_events", [row(start + dt.timedelta(days=i), float(i)) for i in range(28)])
    with session.transaction():
        history.record(session, "lake.events.raw_events", [row(start, 999.0)])
    n = session.fetchone("SELECT count(*) FROM quality.check_results WHERE partition_key = $1", [start.isoformat()])[0]
    assert n == 1
    day = start + dt.timedelta(days=28)
    weekly = history.baseline(session, "lake.events.raw_events", "anomaly_row_count", day, 4, True)
    assert [d.weekday() for d, _ in weekly] == [day.weekday()] * 4
    assert [v for _, v in weekly] == [21.0, 14.0, 7.0, 999.0]


def test_a_five_fold_row_count_spike_fails_through_the_check(warehouse_url):
    """Eight ordinary days build the history in quality.check_results; the ninth, 5x bigger, fails."""
    import dagster as dg
    import pyarrow as pa

    from dataeng_assets.lib.quality.checks import plan, run_checks
    from dataeng_assets.lib.quality.rules import parse_rules
    from dataeng_assets.lib.resources import LakeResource, WarehouseResource

    [rules] = parse_rules("tables:\n  shop.visits:\n    partition_column: day\n    checks:\n"
                          "      - {type: anomaly, metric: row_count, min_history: 7}\n")
    aq = plan(dg.AssetKey(["shop", "visits"]), rules, None, partitioned=True, partition_column=None)
    start = dt.date(2024, 5, 1)
    counts = [100, 104, 98, 101, 97, 103, 99, 100, 500]
    days = [start + dt.timedelta(days=i) for i in range(len(counts))]
    table = pa.table({"day": pa.array([d for d, n in zip(days, counts, strict=True) for _ in range(n)], pa.date32())})
    with Warehouse(env.warehouse_database()).session() as s:
        s.replace_rows("shop", "visits", table)
    verdicts = []
    for d in days:  # one run per day, in order, as the schedule would
        [out] = run_checks(aq, aq.checks, LakeResource(), WarehouseResource(), [d.isoformat()], "run")
        verdicts.append(out.passed)
    assert verdicts == [True] * 8 + [False]
    assert "z +" in out.metadata["observed"].value and out.metadata["trend"].value.endswith("500")
