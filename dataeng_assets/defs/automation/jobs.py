"""Jobs: one per pipeline, selecting its asset group (checks come with their assets)."""

import dagster as dg

from dataeng_assets.defs.analytics.assets import GROUP

user_analytics_job = dg.define_asset_job(
    "user_analytics_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Landing drop → lake → gate → warehouse, for one day or a range of days.",
)

warehouse_job = dg.define_asset_job(
    "warehouse_job",
    selection=dg.AssetSelection.groups("extract", "warehouse", "marts", "user_activity"),
    description="OLTP source → raw (incremental) → dbt staging, snapshot, dimensions, facts for the "
    "day or range, marts; the user-activity ETL and its views; dbt tests run as checks.",
)
