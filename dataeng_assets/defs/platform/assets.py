"""Platform assets: what the platform says about itself."""

import dagster as dg

from dataeng_assets.lib.optimizer.collect import History
from dataeng_assets.lib.optimizer.publish import REPORT_RUNS, metadata, write_files
from dataeng_assets.lib.optimizer.report import build
from dataeng_assets.lib.resources import WarehouseResource

OPTIMIZER_REPORT = dg.AssetKey(["platform", "optimizer_report"])


@dg.asset(
    key=OPTIMIZER_REPORT,
    group_name="platform",
    owners=["team:data-platform"],
    kinds={"python", "html"},
    description="One report over the last runs' step history: recommendations with evidence, "
    "estimated gain and severity; per-step table; trends (markdown here, JSON and HTML files in "
    "the data home). Refreshed by the optimizer sensor after every finished run.",
)
def optimizer_report() -> dg.MaterializeResult:
    report = build(History().runs(limit=REPORT_RUNS))
    return dg.MaterializeResult(metadata=metadata(report, write_files(report)))


QUALITY_REPORT = dg.AssetKey(["platform", "quality_report"])


def quality_report_metadata(instance: dg.DagsterInstance, asset_keys, warehouse) -> tuple[dict, dict]:
    """Build the quality report from the metric history and the instance's materializations."""
    from dataeng_assets.lib.quality import report as quality

    freshness = {}
    for key in asset_keys:
        if key.path[0] == "platform":
            continue
        event = instance.get_latest_materialization_event(key)
        freshness[key.to_user_string()] = event.timestamp if event else None
    with warehouse.session() as session:
        built = quality.build(session, freshness)
    paths = quality.write_files(built)
    md = {
        "score": dg.MetadataValue.float(float(built["score"])) if built["score"] is not None else None,
        "checks": dg.MetadataValue.int(built["checks"]),
        "failing_checks": dg.MetadataValue.int(built["failing"]),
        "failing_critical": dg.MetadataValue.int(built["failing_critical"]),
        "report": dg.MetadataValue.md(quality.markdown(built)),
        "trend_chart": dg.MetadataValue.path(str(paths["chart"])),
        "json": dg.MetadataValue.path(str(paths["json"])),
    }
    return built, {k: v for k, v in md.items() if v is not None}


@dg.asset(
    key=QUALITY_REPORT,
    group_name="platform",
    owners=["team:data-platform"],
    kinds={"python", "svg"},
    pool="warehouse",
    description="One report over every quality check: overall score (% of checks passing on their latest "
    "partition), top failing checks with observed vs threshold, freshness per table and the score trend "
    "over the last partitions (markdown here; JSON, markdown and an SVG chart in <data home>/quality).",
)
def quality_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    keys = context.repository_def.asset_graph.get_all_asset_keys()
    _, md = quality_report_metadata(context.instance, keys, warehouse)
    return dg.MaterializeResult(metadata=md)
