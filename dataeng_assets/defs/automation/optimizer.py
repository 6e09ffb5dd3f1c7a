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


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="optimizer_on_success",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records each successful run's step stats and refreshes platform/optimizer_report.",
)
def optimizer_on_success(context: dg.RunStatusSensorContext):
    _evaluate(context)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.FAILURE,
    name="optimizer_on_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records each failed run's step stats (retries, the failing step) and refreshes the report.",
)
def optimizer_on_failure(context: dg.RunStatusSensorContext):
    _evaluate(context)
