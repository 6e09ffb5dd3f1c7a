"""Quality gates of the user-analytics pipeline."""

from dataeng_assets.defs.analytics.assets import USER_METRICS
from dataeng_assets.defs.partitions import daily_partitions
from dataeng_assets.lib.checks import pandera_lake_check
from dataeng_assets.lib.schemas import USER_METRICS as USER_METRICS_SCHEMA

# Gate the lake dataset, not the warehouse table: a blocking check runs after its asset is
# written, so gating here keeps bad rows out of the warehouse altogether.
user_metrics_gate = pandera_lake_check(
    USER_METRICS,
    USER_METRICS_SCHEMA,
    daily_partitions,
    name="user_metrics_gate",
    description="The seed's data_quality_check as a blocking gate: rows > 0, event_count >= 0, "
    "user_id not null, one row per user per day.",
)
