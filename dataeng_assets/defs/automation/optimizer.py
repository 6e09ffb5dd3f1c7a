"""The optimizer sensor: after every finished run (success or failure), read that run's step
stats into the durable history and refresh the optimizer report. One run per evaluation."""

import dagster as dg

from dataeng_assets.defs.platform.assets import OPTIMIZER_REPORT
from dataeng_assets.lib.optimizer.collect import History, collect_run
from dataeng_assets.lib.optimizer.publish import REPORT_RUNS, metadata, write_files
from dataeng_assets.lib.optimizer.report import build


def refresh_optimizer(instance: dg.DagsterInstance, run_id: str, asset_graph=None) -> dict | None:
    """Record one finished run and republish the report; returns the report.

    `asset_graph` gives the step dependencies (the code location's graph by default).
    """
    if asset_graph is None:
        from dataeng_assets.definitions import defs

        asset_graph = defs().resolve_asset_graph()
    record = collect_run(instance, run_id, asset_graph)
    if record is None:
        return None
    history = History()
    history.record(record)
    report = build(history.runs(limit=REPORT_RUNS))
    paths = write_files(report)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=OPTIMIZER_REPORT, metadata=metadata(report, paths))
    )
    return report


def _evaluate(context: dg.RunStatusSensorContext) -> None:
    graph = context.repository_def.asset_graph if context.repository_def else None
    report = refresh_optimizer(context.instance, context.dagster_run.run_id, graph)
    if report and report["recommendations"]:
        context.log.info(f"top recommendation: {report['recommendations'][0]['title']}")


def optimizer_sensor(status: dg.DagsterRunStatus) -> dg.RunStatusSensorDefinition:
    """One sensor per finished-run status; each records the run and refreshes the report."""
    word = "success" if status == dg.DagsterRunStatus.SUCCESS else "failure"

    @dg.run_status_sensor(
        run_status=status,
        name=f"optimizer_on_{word}",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Records each run that ends in {word}: its step stats (durations, attempts, memory, "
        "SQL time) go to the optimizer history, and platform/optimizer_report is refreshed.",
    )
    def _sensor(context: dg.RunStatusSensorContext):
        _evaluate(context)

    return _sensor


optimizer_on_success = optimizer_sensor(dg.DagsterRunStatus.SUCCESS)
optimizer_on_failure = optimizer_sensor(dg.DagsterRunStatus.FAILURE)
