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
    selection=dg.AssetSelection.groups("extract", "warehouse", "marts"),
    description="OLTP source → raw (incremental) → dbt staging, snapshot, dimensions, facts for the "
    "day or range, marts; dbt tests run as checks.",
)

user_activity_job = dg.define_asset_job(
    "user_activity_job",
    selection=dg.AssetSelection.groups("user_activity"),
    description="The user-activity ETL (needs the day's lake events, user_daily_metrics and "
    "dim_customer) and its dbt views.",
)
