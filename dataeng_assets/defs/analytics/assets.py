"""The user-analytics pipeline (seed 000's Airflow DAG) as daily-partitioned assets.

landing drop → lake/events/raw_events (+ quarantine) → lake/analytics/user_metrics → [gate]
→ analytics.user_daily_metrics → analytics.user_monthly_metrics
"""


import os
import tempfile
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa

from dataeng_assets.defs.partitions import daily_partitions
from dataeng_assets.lib import sql
from dataeng_assets.lib.events import parse_drops, scratch_duckdb
from dataeng_assets.lib.lake import DuckDBQuery, LakeDataset
from dataeng_assets.lib.resources import LandingZone, WarehouseResource
from dataeng_assets.lib.retry import retry_transient
from dataeng_assets.lib.stepstats import profiled, step_metrics

GROUP = "user_analytics"
OWNERS = ["team:data-platform"]
DROP_MARKER = "_SUCCESS"

RAW_EVENTS = dg.AssetKey(["lake", "events", "raw_events"])
QUARANTINE = dg.AssetKey(["lake", "events", "raw_events_quarantine"])
USER_METRICS = dg.AssetKey(["lake", "analytics", "user_metrics"])
USER_DAILY = dg.AssetKey(["analytics", "user_daily_metrics"])
USER_MONTHLY = dg.AssetKey(["analytics", "user_monthly_metrics"])

_partitioned = dict(partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run())


def drop_folder(day: str) -> str:
    return f"events/date={day}"


@dg.multi_asset(
    outs={
        "raw_events": dg.AssetOut(
            key=RAW_EVENTS,
            io_manager_key="lake_io_manager",
            description="One row per event (unique event_id per day), typed, from the day's "
            "clickstream drop. Lines that cannot be used go to raw_events_quarantine.",
            kinds={"parquet", "duckdb"},
            owners=OWNERS,
            metadata={"partition_column": "date"},
        ),
        "raw_events_quarantine": dg.AssetOut(
            key=QUARANTINE,
            io_manager_key="lake_io_manager",
            description="One row per line set aside from the day's drop: the raw line, its file "
            "and the reason (malformed_json, not_a_json_object, missing_event_id, "
            "missing_event_type, invalid_user_id, invalid_event_timestamp, invalid_amount, "
            "invalid_properties, event_date_outside_partition, duplicate_event_id).",
            kinds={"parquet"},
            owners=OWNERS,
            metadata={"partition_column": "date"},
        ),
    },
    group_name=GROUP,
    **_partitioned,
)
def raw_events(context: dg.AssetExecutionContext, landing: LandingZone):
    store = landing.get()
    days = context.partition_keys
    with (
        step_metrics(context, [RAW_EVENTS]) as metrics,
        tempfile.TemporaryDirectory(prefix="dataeng-drop-") as tmp,
        scratch_duckdb() as con,
    ):
        profiled(con)
        files: list[str] = []
        with retry_transient(context):
            for day in days:
                folder = drop_folder(day)
                if not store.has_file(f"{folder}/{DROP_MARKER}"):
                    raise dg.Failure(
                        f"no complete drop for {day}: {store.url(store.root)}/{folder}/{DROP_MARKER} "
                        "is missing (the arrival sensor requests a day once its marker lands)"
                    )
                found = store.fetch_to_local(folder, ".jsonl", tmp)
                if not found:
                    raise dg.Failure(f"the drop for {day} has a marker but no .jsonl files")
                files += found
        metrics.input(nbytes=sum(os.path.getsize(f) for f in files))
        with metrics.sql("parse_drops", con):
            counts = parse_drops(con, files)
        metrics.input(rows=counts.lines)
        quarantined = sum(counts.quarantined.values())
        with metrics.sql("write_raw_events"):
            yield dg.Output(
                DuckDBQuery(con, sql.load("raw_events")),
                output_name="raw_events",
                metadata={
                    "lines_read": counts.lines,
                    "events": counts.good,
                    "quarantined": quarantined,
                    "quarantine_rate": round(quarantined / counts.lines, 6) if counts.lines else 0.0,
                    "source_files": len(files),
                    "parse_path": counts.path,
                },
            )
            yield dg.Output(
                DuckDBQuery(con, sql.load("raw_events_quarantine")),
                output_name="raw_events_quarantine",
                metadata={"by_reason": dg.MetadataValue.json(counts.quarantined)},
            )


@dg.asset(
    key=USER_METRICS,
    ins={"raw_events": dg.AssetIn(key=RAW_EVENTS)},
    io_manager_key="lake_io_manager",
    group_name=GROUP,
    owners=OWNERS,
    kinds={"parquet", "duckdb"},
    metadata={"partition_column": "date"},
    description="One row per user per day: event_count and total_items (items in the events' "
    "cart lists), the seed's transform, computed by DuckDB over the lake's Parquet.",
    **_partitioned,
)
def user_metrics(context: dg.AssetExecutionContext, raw_events: LakeDataset):
    with step_metrics(context, [USER_METRICS]) as metrics, scratch_duckdb() as con:
        profiled(con)
        raw_events.register(con, "raw_events")
        with metrics.sql("user_metrics", con):
            yield dg.Output(DuckDBQuery(con, sql.load("user_metrics")))


@dg.asset(
    key=USER_DAILY,
    ins={"user_metrics": dg.AssetIn(key=USER_METRICS)},
    io_manager_key="warehouse_io_manager",
    group_name=GROUP,
    owners=OWNERS,
    kinds={"warehouse"},
    metadata={"partition_expr": "date"},
    pool="warehouse",
    description="One row per user per day, loaded from the gated lake dataset (the seed's load "
    "step). Each run replaces exactly its days.",
    **_partitioned,
)
def user_daily_metrics(context: dg.AssetExecutionContext, user_metrics: LakeDataset):
    # Streamed from the Parquet files into the warehouse; never held whole in memory.
    with step_metrics(context, [USER_DAILY]) as metrics, metrics.sql("load"):
        yield dg.Output(user_metrics.dataset().scanner().to_reader())


MONTHLY_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("month", pa.date32()),
        ("total_events", pa.int64()),
        ("total_items", pa.int64()),
        ("active_days", pa.int64()),
    ]
)


def month_bounds(first_day: date, end_exclusive: date) -> tuple[date, date]:
    """First day of the first month touched, first day of the month after the last one."""
    last = end_exclusive - timedelta(days=1)
    start = first_day.replace(day=1)
    after = (last.replace(day=1) + timedelta(days=32)).replace(day=1)
    return start, after


@dg.asset(
    key=USER_MONTHLY,
    deps=[USER_DAILY],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"warehouse"},
    pool="warehouse",
    description="One row per user per month: total_events, total_items, active_days. Upserted "
    "(the seed's INSERT … ON CONFLICT DO UPDATE) by recomputing each month the run touches from "
    "the daily table, so reruns and days arriving out of order never count twice.",
    **_partitioned,
)
def user_monthly_metrics(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    window = context.partition_time_window
    start, after = month_bounds(window.start.date(), window.end.date())
    with (
        step_metrics(context, [USER_MONTHLY]) as metrics,
        retry_transient(context),
        warehouse.session() as s,
        metrics.sql("upsert"),
        s.transaction(),
    ):
        s.ensure_table("analytics", "user_monthly_metrics", MONTHLY_SCHEMA, primary_key=["user_id", "month"])
        upserted = s.rowcount(sql.load("user_monthly_metrics"), [start, after])
        removed = s.rowcount(sql.load("user_monthly_metrics_orphans"), [start, after])
        rows = s.fetchone(
            "SELECT count(*) FROM analytics.user_monthly_metrics WHERE month >= $1 AND month < $2",
            [start, after],
        )[0]
    yield dg.MaterializeResult(
        metadata={
            "row_count": int(rows),
            "rows_upserted": int(upserted),
            "rows_removed": int(removed),
            "months": dg.MetadataValue.text(f"{start:%Y-%m}..{(after - timedelta(days=1)):%Y-%m}"),
        }
    )
