"""The warehouse IO manager on DuckDB and on real PostgreSQL: partition replace is idempotent and
atomic, schemas evolve by adding columns, incompatible type changes are refused."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pytest

from dataeng_assets.defs.partitions import daily_partitions
from dataeng_assets.defs.resources import build_resources
from dataeng_assets.lib import env
from dataeng_assets.lib.warehouse import Warehouse

KEY = ["analytics", "t_metrics"]


def make_asset(produce):
    @dg.asset(
        key=KEY, partitions_def=daily_partitions, io_manager_key="warehouse_io_manager",
        metadata={"partition_expr": "date"}, backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def t_metrics(context: dg.AssetExecutionContext):
        return produce(context)

    return t_metrics


def rows_for(context, value: int, extra: dict | None = None) -> pa.Table:
    days = [date.fromisoformat(k) for k in context.partition_keys]
    cols = {
        "date": pa.array([d for d in days for _ in range(3)], pa.date32()),
        "user_id": pa.array([u for _ in days for u in (1, 2, 3)], pa.int64()),
        "value": pa.array([value * u for _ in days for u in (1, 2, 3)], pa.int64()),
    }
    cols.update(extra or {})
    return pa.table(cols)


def run(asset, partition_key=None, range_=None):
    tags = {"dagster/asset_partition_range_start": range_[0], "dagster/asset_partition_range_end": range_[1]} if range_ else None
    return dg.materialize([asset], partition_key=partition_key, tags=tags, resources=build_resources(), raise_on_error=False)


def table() -> list[dict]:
    with Warehouse(env.warehouse_database()).session() as s:
        return s.to_arrow("SELECT * FROM analytics.t_metrics ORDER BY date, user_id").to_pylist()


def test_partition_replace_is_idempotent(warehouse_url):
    asset = make_asset(lambda c: rows_for(c, 10))
    assert run(asset, "2024-01-14").success
    assert run(asset, "2024-01-15").success
    before = table()
    assert len(before) == 6
    result = run(asset, "2024-01-14")
    assert result.success
    assert table() == before
    md = result.get_asset_materialization_events()[0].materialization.metadata
    assert md["row_count"].value == 3 and md["rows_replaced"].value == 3


def test_rerun_with_new_values_replaces_only_its_partition(warehouse_url):
    assert run(make_asset(lambda c: rows_for(c, 10)), range_=("2024-01-14", "2024-01-15")).success
    assert run(make_asset(lambda c: rows_for(c, 7)), "2024-01-15").success
    got = {(r["date"].isoformat(), r["user_id"]): r["value"] for r in table()}
    assert got[("2024-01-14", 2)] == 20 and got[("2024-01-15", 2)] == 14
    assert len(got) == 6


def test_failure_mid_write_leaves_previous_partition(warehouse_url):
    assert run(make_asset(lambda c: rows_for(c, 10)), "2024-01-14").success
    before = table()

    def broken(context):
        good = rows_for(context, 99)

        def batches():
            yield good.to_batches()[0].slice(0, 2)
            raise OSError("disk vanished mid-write")

        return pa.RecordBatchReader.from_batches(good.schema, batches())

    result = run(make_asset(broken), "2024-01-14")
    assert not result.success
    assert table() == before


def test_crash_after_delete_rolls_back(warehouse_url):
    """The delete of the old rows and the insert of the new ones commit together or not at all."""
    from dataeng_assets.lib import warehouse as wh

    assert run(make_asset(lambda c: rows_for(c, 10)), "2024-01-14").success
    before = table()
    deleted = []
    with pytest.MonkeyPatch.context() as mp:
        for cls in (wh.DuckDBSession, wh.PostgresSession):

            def failing(self, sql, params=None, _original=cls.execute):
                if sql.startswith('INSERT INTO "analytics"."t_metrics"'):
                    raise RuntimeError("crash between delete and insert")
                return _original(self, sql, params)

            def counting(self, sql, params=None, _original=cls.rowcount):
                n = _original(self, sql, params)
                if sql.startswith("DELETE"):
                    deleted.append(n)
                return n

            mp.setattr(cls, "execute", failing)
            mp.setattr(cls, "rowcount", counting)
        result = run(make_asset(lambda c: rows_for(c, 99)), "2024-01-14")
    assert not result.success
    assert deleted == [3]  # the old rows were deleted inside the transaction before the crash
    assert table() == before


def test_new_column_is_added(warehouse_url):
    assert run(make_asset(lambda c: rows_for(c, 10)), "2024-01-14").success
    extra = lambda c: rows_for(c, 10, {"bounce_rate": pa.array([0.5] * 3 * len(c.partition_keys))})  # noqa: E731
    result = run(make_asset(extra), "2024-01-15")
    assert result.success
    md = result.get_asset_materialization_events()[0].materialization.metadata
    assert md["added_columns"].value == ["bounce_rate"]
    rows = table()
    assert [r["bounce_rate"] for r in rows] == [None, None, None, 0.5, 0.5, 0.5]


def test_incompatible_type_change_is_refused(warehouse_url):
    assert run(make_asset(lambda c: rows_for(c, 10)), "2024-01-14").success
    before = table()
    as_text = lambda c: rows_for(c, 1, {"value": pa.array(["x"] * 3 * len(c.partition_keys))})  # noqa: E731
    result = run(make_asset(as_text), "2024-01-14")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.to_string())
    assert "t_metrics.value" in message and "refusing an incompatible type change" in message
    assert table() == before


def test_rows_outside_the_partition_are_refused(warehouse_url):
    def wrong_day(context):
        t = rows_for(context, 1)
        return t.set_column(0, "date", pa.array([date(2024, 2, 1)] * t.num_rows, pa.date32()))

    result = run(make_asset(wrong_day), "2024-01-14")
    assert not result.success
    assert "outside the partition" in next(
        e for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ).event_specific_data.error.to_string()


def test_load_input_reads_exactly_the_partition(warehouse_url):
    assert run(make_asset(lambda c: rows_for(c, 10)), range_=("2024-01-14", "2024-01-16")).success
    seen = {}

    @dg.asset(partitions_def=daily_partitions, ins={"t": dg.AssetIn(key=KEY)})
    def reader(t: pa.Table) -> None:
        seen["rows"] = t.num_rows
        seen["days"] = sorted({d.isoformat() for d in t.column("date").to_pylist()})

    producer = make_asset(lambda c: rows_for(c, 10))
    result = dg.materialize(
        [producer, reader], partition_key="2024-01-15", resources=build_resources(), selection=[reader]
    )
    assert result.success
    assert seen == {"rows": 3, "days": ["2024-01-15"]}


@pytest.mark.parametrize("bad", ["postgresql://u:s3cret@127.0.0.1:1/db", "mysql://x/y", "duckdb://"])
def test_bad_warehouse_url_gives_a_clear_error(data_home, monkeypatch, bad):
    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", bad)
    result = run(make_asset(lambda c: rows_for(c, 1)), "2024-01-14")
    assert not result.success
    errors = [e for e in result.all_events if e.is_failure]
    text = " ".join(e.event_specific_data.error.to_string() for e in errors if e.event_specific_data and getattr(e.event_specific_data, "error", None))
    assert "DATAENG_WAREHOUSE_URL=" in text
    assert "s3cret" not in text
