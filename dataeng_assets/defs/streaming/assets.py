"""Streaming ingestion as assets: one micro-batch step (seed 000's EventStreamProcessor, seed 004's
workflow 4) writes the lake's hourly event partitions, the DLQ and the event-time windows, and
checks the consumer lag and the DLQ rate."""

import datetime as dt

import dagster as dg

from dataeng_assets.lib.resources import LakeResource, LandingZone, StreamResource, WarehouseResource
from dataeng_assets.lib.retry import retry_transient
from dataeng_assets.lib.stepstats import step_metrics
from dataeng_assets.lib.streaming.ingest import DLQ_TABLE, EVENTS_KEY, STREAM_SCHEMA, ingest
from dataeng_assets.lib.streaming.windows import SCHEMA, WindowSettings

GROUP = "streaming"
LAKE_EVENTS = dg.AssetKey(EVENTS_KEY)
EVENTS_DLQ = dg.AssetKey([STREAM_SCHEMA, DLQ_TABLE])
TABLES = {  # warehouse table -> its grain
    "user_events": "One row per accepted event (event_id), enriched; the input of every window.",
    "late_events": "One row per event that arrived after the watermark (event time < max event "
                   "time - allowed lateness), with how late it was; no window counts it.",
    "pageviews_5m": "One row per user per 5 minutes of event time (tumbling windows) with page views.",
    "purchases_15m": "One row per 15 minutes of event time, every 5 minutes (hopping windows), with "
                     "purchases, revenue and buyers.",
    "sessions": "One row per user session (session windows: a gap of 30 minutes without events "
                "closes one) with duration, events, page views, purchases and revenue.",
}
WAREHOUSE_KEYS = {t: dg.AssetKey([SCHEMA, t]) for t in TABLES}


def _spec(key: dg.AssetKey, description: str, kinds: set[str], deps=()) -> dg.AssetSpec:
    return dg.AssetSpec(key, description=description, group_name=GROUP, owners=["team:data-platform"],
                        kinds=kinds, deps=list(deps))


@dg.multi_asset(
    name="stream_ingest",
    specs=[
        _spec(LAKE_EVENTS, "One row per event (event_id unique within its hour), enriched as seed 000's "
              "stream processor does (processed_at, revenue_category, is_high_value, hour_of_day, "
              "day_of_week), in hourly Parquet partitions (hour=YYYY-MM-DDTHH). From Kafka "
              "(DATAENG_KAFKA_BOOTSTRAP) or, without it, the landing zone's JSONL drops; offsets are "
              "committed only after the lake and the warehouse hold the batch.", {"kafka", "parquet"}),
        _spec(EVENTS_DLQ, "One row per message that did not decode or failed validation: source, "
              "position (partition:offset or line), the original payload, the error, when. Also "
              "produced to the events-dlq topic with Kafka.", {"kafka", "warehouse"}),
        *[_spec(k, TABLES[t], {"warehouse", "sql"}, [LAKE_EVENTS]) for t, k in WAREHOUSE_KEYS.items()],
    ],
    check_specs=[
        dg.AssetCheckSpec("consumer_lag", asset=LAKE_EVENTS, description="Messages not yet consumed "
                          "after the run, per partition (files, for the landing zone); warns above "
                          "the stream resource's lag_warn_records."),
        dg.AssetCheckSpec("dlq_rate", asset=EVENTS_DLQ, description="Share of the run's messages that "
                          "went to the DLQ; fails (and alerts) above the stream resource's dlq_rate_max."),
    ],
    pool="warehouse",
)
def stream_ingest(context: dg.AssetExecutionContext, stream: StreamResource, landing: LandingZone,
                  lake: LakeResource, warehouse: WarehouseResource):
    windows = WindowSettings(lateness=dt.timedelta(seconds=stream.lateness_seconds),
                             session_gap=dt.timedelta(seconds=stream.session_gap_seconds),
                             idle_timeout=dt.timedelta(seconds=stream.idle_partition_seconds))
    # a retried step replays from the committed offsets, which the sink makes harmless
    with step_metrics(context) as metrics, retry_transient(context), warehouse.session() as s, \
            stream.open(landing.get(), s) as source:
        context.log.info(f"stream: {stream.settings().describe()}")
        with metrics.sql("ingest"):
            total = ingest(source, lake.get(), s, stream.max_records, stream.max_seconds, stream.batch_records,
                           windows, stream.route_processed, context.log.info)
        lag = source.lag()
        counts = {t: s.fetchone(f"SELECT count(*) FROM {SCHEMA}.{t}")[0] for t in TABLES}
        dlq_rows = s.fetchone(f"SELECT count(*) FROM {STREAM_SCHEMA}.{DLQ_TABLE}")[0]
        metrics.input(rows=total.read)
    total_lag = sum(p["lag"] for p in lag.values())
    watermark = total.watermark.isoformat() if total.watermark else None
    yield dg.MaterializeResult(asset_key=LAKE_EVENTS, metadata={
        "row_count": total.events, "messages_read": total.read, "micro_batches": total.batches,
        "duplicates_in_batch": total.duplicates, "hours_written": dg.MetadataValue.json(total.partitions),
        "events_per_s": round(total.read / total.seconds, 1) if total.seconds else 0.0,
        "consumer_lag": total_lag, "lag_by_partition": dg.MetadataValue.json(lag),
    })
    yield dg.MaterializeResult(asset_key=EVENTS_DLQ, metadata={
        "row_count": total.dlq, "total_rows": dlq_rows, "by_error": dg.MetadataValue.json(total.dlq_by_error),
    })
    new_rows = {"user_events": total.accepted, "late_events": total.late}
    for t, key in WAREHOUSE_KEYS.items():
        md = {"row_count": counts[t], "watermark": watermark}
        if t in new_rows:
            md["new_rows"] = new_rows[t]
        yield dg.MaterializeResult(asset_key=key, metadata=md)
    yield dg.AssetCheckResult(
        check_name="consumer_lag", asset_key=LAKE_EVENTS, passed=total_lag <= stream.lag_warn_records,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"observed": total_lag, "threshold": stream.lag_warn_records,
                  "lag_by_partition": dg.MetadataValue.json(lag)},
    )
    rate = total.dlq / total.read if total.read else 0.0
    yield dg.AssetCheckResult(
        check_name="dlq_rate", asset_key=EVENTS_DLQ, passed=rate <= stream.dlq_rate_max,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"observed": round(rate, 6), "threshold": stream.dlq_rate_max, "dlq_rows": total.dlq,
                  "messages_read": total.read, "by_error": dg.MetadataValue.json(total.dlq_by_error)},
    )


stream_job = dg.define_asset_job(
    "stream_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="One micro-batch run: the stream (Kafka or the landing zone) → lake hourly partitions, "
    "DLQ, event-time windows; lag and DLQ-rate checks.",
)


def stream_sensor(default_running: bool) -> dg.SensorDefinition:
    """Requests a micro-batch when the source has a backlog and no stream run is in flight. On by
    default when Kafka is configured."""

    @dg.sensor(
        name="stream_sensor",
        job=stream_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING if default_running else dg.DefaultSensorStatus.STOPPED,
        description="Micro-batch trigger: a stream_job run whenever the topic (or the landing zone) "
        "has unconsumed events and no stream_job run is queued or running.",
    )
    def _sensor(context: dg.SensorEvaluationContext, stream: StreamResource, landing: LandingZone,
                warehouse: WarehouseResource):
        active = context.instance.get_run_records(
            dg.RunsFilter(job_name=stream_job.name, statuses=[
                dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]),
            limit=1,
        )
        if active:
            return dg.SkipReason(f"run {active[0].dagster_run.run_id} is still in flight")
        try:
            lag = stream_backlog(stream, landing, warehouse)
        except Exception as e:  # noqa: BLE001 - a busy DuckDB file or a broker hiccup: next tick
            return dg.SkipReason(f"could not read the backlog: {type(e).__name__}: {e}")
        backlog = sum(p["lag"] for p in lag.values())
        if not backlog:
            return dg.SkipReason("caught up")
        return dg.RunRequest(tags={"dataeng/backlog": str(backlog)}, run_key=None)

    return _sensor


def stream_backlog(stream: StreamResource, landing: LandingZone, warehouse: WarehouseResource) -> dict:
    """The source's lag; Kafka needs no warehouse connection for it."""
    source = stream.kafka_source()
    if source is not None:
        try:
            return source.lag()
        finally:
            source.close()
    with warehouse.session() as s, stream.open(landing.get(), s) as source:
        return source.lag()
