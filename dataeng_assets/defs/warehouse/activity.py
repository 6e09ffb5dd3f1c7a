"""The user-activity ETL (seed 000's Spark job) as SQL inside the warehouse, per daily partition."""

import dagster as dg
import pyarrow as pa

from dataeng_assets.defs.analytics.assets import RAW_EVENTS, USER_DAILY
from dataeng_assets.defs.partitions import daily_partitions
from dataeng_assets.lib import sql
from dataeng_assets.lib.resources import LakeResource, WarehouseResource
from dataeng_assets.lib.retry import retry_transient
from dataeng_assets.lib.stepstats import step_metrics

FACT_USER_EVENTS = dg.AssetKey(["analytics", "fact_user_events"])
EVENT_COLUMNS = ["date", "event_id", "user_id", "session_id", "event_type", "event_timestamp", "amount", "item_count"]
# The seed's daily metrics, added to the one table at that grain (analytics.user_daily_metrics).
DAILY_COLUMNS = pa.schema([
    ("total_sessions", pa.int64()), ("avg_session_duration", pa.float64()), ("bounce_sessions", pa.int64()),
    ("bounce_rate", pa.float64()), ("event_types", pa.string()), ("total_revenue", pa.float64()),
])


@dg.asset(
    key=FACT_USER_EVENTS,
    deps=[RAW_EVENTS, dg.AssetKey(["analytics", "dim_customer"]), USER_DAILY],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="user_activity",
    owners=["team:data-platform"],
    kinds={"warehouse", "sql"},
    pool="warehouse",
    description="One row per event, enriched with the customer version valid at the event time "
    "(segment, country, registration_date, days_since_registration) and sessionized "
    "(session_duration, events_in_session, event_sequence, is_bounce). The same run merges the "
    "seed's daily metrics (sessions, avg duration, bounces, event types, revenue) into "
    "analytics.user_daily_metrics for its days.",
)
def fact_user_events(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource):
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    events = lake.get().handle(RAW_EVENTS.path, context.partition_keys)
    with step_metrics(context) as metrics, retry_transient(context), warehouse.session() as s, metrics.sql("etl"):
        if not s.columns("analytics", "user_daily_metrics"):
            raise dg.Failure("analytics.user_daily_metrics does not exist yet: materialize user_analytics first")
        with s.transaction():
            staged = s.stage_arrow("__events", events.dataset().scanner(columns=EVENT_COLUMNS).to_reader())
            result = s.replace_rows_from_query(
                "analytics", "fact_user_events", sql.load("fact_user_events"), None,
                "date >= $1 AND date < $2", [start, end],
            )
            s.ensure_table("analytics", "user_daily_metrics", DAILY_COLUMNS)
            merged = s.rowcount(sql.load("user_activity_daily"), [start, end])
            unmatched = s.fetchone(
                "SELECT count(*) FROM analytics.fact_user_events WHERE date >= $1 AND date < $2 AND customer_key IS NULL",
                [start, end],
            )[0]
            s.execute("DROP TABLE __events")
        metrics.input(rows=staged)
    yield dg.MaterializeResult(metadata={
        "row_count": result.inserted,
        "rows_replaced": result.deleted,
        "daily_rows_merged": merged,
        "events_without_customer_version": int(unmatched),
    })
