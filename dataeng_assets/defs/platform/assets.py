"""Platform assets: what the platform says about itself."""

import dagster as dg

from dataeng_assets.lib.optimizer.collect import History
from dataeng_assets.lib.optimizer.publish import REPORT_RUNS, metadata, write_files
from dataeng_assets.lib.optimizer.report import build

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
