"""The quality-alert sensor: reads check evaluations (not run failures) with a per-check cursor,
and failed runs of partitioned jobs, and delivers alerts through `lib/quality/alerts.py`.

It reads `get_asset_check_execution_history` per check, which works on the default SQLite
instance storage and on PostgreSQL alike. Evaluations start PLANNED and are updated in place:
the cursor never moves past one whose run is still going.
"""

import datetime as dt
import json
import time
from dataclasses import asdict

import dagster as dg

from dataeng_assets.lib.quality.alerts import (
    Alert,
    AlertConfig,
    CheckState,
    Delivery,
    Evaluation,
    Ledger,
    decide,
    deliver,
    load_config,
    run_failure_alert,
)

HISTORY_PAGE = 50  # evaluations read per check per tick; a check runs far less often than ticks
RUN_TAGS = ("dagster/partition", "dagster/asset_partition_range_start")
REMEMBER_RUNS = 500


def _severity(ev) -> str:
    return "critical" if ev.severity == dg.AssetCheckSeverity.ERROR else "warning"


def collect_evaluations(instance: dg.DagsterInstance, asset_graph, cursor: dict) -> list[Evaluation]:
    """Finished evaluations newer than each check's cursor; advances `cursor["checks"]`."""
    seen = cursor.setdefault("checks", {})
    out = []
    for key in sorted(asset_graph.asset_check_keys, key=str):
        name = f"{key.asset_key.to_user_string()}:{key.name}"
        last = seen.get(name, 0)
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=HISTORY_PAGE)
        for rec in sorted((r for r in records if r.id > last), key=lambda r: r.id):
            if rec.status.value == "PLANNED":
                run = instance.get_run_by_id(rec.run_id)
                if run is not None and not run.is_finished:
                    break  # updated in place when the check finishes: come back to it
                last = rec.id  # the run ended without evaluating it (skipped, crashed)
                continue
            ev = rec.event.dagster_event.event_specific_data
            node = asset_graph.get(key.asset_key) if asset_graph.has(key.asset_key) else None
            out.append(Evaluation(
                name, key.asset_key.to_user_string(), key.name, rec.id, rec.run_id, ev.passed, _severity(ev),
                rec.create_timestamp, {k: v.value for k, v in ev.metadata.items()},
                node.group_name if node else None, tuple(node.owners) if node else (),
            ))
            last = rec.id
        seen[name] = last
    return out


def collect_run_failures(instance: dg.DagsterInstance, cursor: dict, config: AlertConfig, now: float) -> list[Alert]:
    """Failed runs of partitioned jobs not already explained by a failed blocking check."""
    after = cursor.get("runs_after")
    seen = set(cursor.get("runs_seen", []))
    gated = set(cursor.get("gated_runs", []))
    filters = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.FAILURE],
        updated_after=None if after is None else _dt(after - 1),  # inclusive margin; `seen` dedupes
    )
    alerts = []
    for rec in instance.get_run_records(filters=filters, limit=200, order_by="update_timestamp", ascending=True):
        run = rec.dagster_run
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        cursor["runs_after"] = max(cursor.get("runs_after") or 0, rec.update_timestamp.timestamp())
        tags = run.tags
        if not any(t in tags for t in RUN_TAGS) or run.run_id in gated:
            continue
        partitions = tags.get("dagster/partition") or (
            f"{tags.get('dagster/asset_partition_range_start')}..{tags.get('dagster/asset_partition_range_end')}"
        )
        alerts.append(run_failure_alert(run.run_id, run.job_name, partitions, None, config.ui_url, now))
    cursor["runs_seen"] = sorted(seen)[-REMEMBER_RUNS:]
    return alerts


def _dt(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def evaluate_alerts(
    instance: dg.DagsterInstance, asset_graph, cursor: dict, config: AlertConfig | None = None,
    ledger: Ledger | None = None, now: float | None = None,
) -> tuple[list[Alert], Delivery, dict]:
    """One tick: collect, decide, deliver. Returns the alerts, what was delivered, the new cursor."""
    config = config or load_config()
    now = now or time.time()
    cursor = json.loads(json.dumps(cursor or {}))
    evaluations = collect_evaluations(instance, asset_graph, cursor)
    state = {k: CheckState(**v) for k, v in cursor.get("state", {}).items()}
    alerts = decide(evaluations, state, config.cooldown_s, config.ui_url, now)
    gated = set(cursor.get("gated_runs", [])) | {e.run_id for e in evaluations if not e.passed and e.severity == "critical"}
    cursor["gated_runs"] = sorted(gated)[-REMEMBER_RUNS:]
    alerts += collect_run_failures(instance, cursor, config, now)
    pending = [Alert(**a) for a in cursor.get("pending", [])]
    delivery = deliver(pending + alerts, config, ledger or Ledger())
    failed_ids = {a_id for a_id, _, _ in delivery.failed}
    cursor["pending"] = [asdict(a) for a in pending + alerts if a.id in failed_ids][-REMEMBER_RUNS:]
    cursor["state"] = {k: asdict(v) for k, v in state.items()}
    return alerts, delivery, cursor


@dg.sensor(
    name="quality_alerts",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on asset-check results (which open-source Dagster does not alert on) and on failed "
    "runs of partitioned jobs: one alert per failed evaluation, a cooldown per check, a recovery notice, "
    "routed by severity, group and owner to the alert log (default), a webhook or email. Config: "
    "DATAENG_ALERTS_CONFIG or <data home>/alerting.yaml.",
)
def quality_alerts(context: dg.SensorEvaluationContext):
    graph = context.repository_def.asset_graph
    alerts, delivery, cursor = evaluate_alerts(context.instance, graph, json.loads(context.cursor or "{}"))
    context.update_cursor(json.dumps(cursor))
    for alert_id, sink, error in delivery.failed:
        context.log.warning(f"alert {alert_id} to {sink} failed, retried next tick: {error}")
    return dg.SkipReason(f"{len(alerts)} new alert(s); {len(delivery.sent)} delivered, {len(delivery.failed)} failed")
