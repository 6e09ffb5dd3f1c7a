"""The one entry point of the code location."""

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    from dataeng_assets.defs.analytics import assets as analytics_assets
    from dataeng_assets.defs.analytics import checks as analytics_checks
    from dataeng_assets.defs.automation.jobs import user_analytics_job
    from dataeng_assets.defs.automation.schedules import user_analytics_schedule
    from dataeng_assets.defs.automation.sensors import events_arrival_sensor
    from dataeng_assets.defs.resources import build_resources

    return dg.Definitions(
        assets=dg.load_assets_from_modules([analytics_assets]),
        asset_checks=dg.load_asset_checks_from_modules([analytics_checks]),
        jobs=[user_analytics_job],
        schedules=[user_analytics_schedule],
        sensors=[events_arrival_sensor],
        resources=build_resources(),
    )
