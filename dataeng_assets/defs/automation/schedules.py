"""Schedules."""

import dagster as dg

from dataeng_assets.defs.automation.jobs import user_analytics_job

# 02:00 UTC for the previous day, as the seed's DAG ("0 2 * * *"): the day's drop is complete by
# then, and the run lands before the working day starts in Europe.
user_analytics_schedule = dg.build_schedule_from_partitioned_job(
    user_analytics_job, hour_of_day=2, minute_of_hour=0, name="user_analytics_daily"
)
