"""Jobs: one per pipeline, selecting its asset group (checks come with their assets)."""

import dagster as dg

from dataeng_assets.defs.analytics.assets import GROUP

user_analytics_job = dg.define_asset_job(
    "user_analytics_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Landing drop → lake → gate → warehouse, for one day or a range of days.",
)
