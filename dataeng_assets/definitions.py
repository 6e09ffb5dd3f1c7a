"""The one entry point of the code location."""

import dagster as dg

# Assets declare kinds={"warehouse"}; the UI shows the engine that is actually configured.
WAREHOUSE_KIND = "warehouse"


def _warehouse_engine() -> str | None:
    from dataeng_assets.lib import env

    try:
        return env.warehouse_database().kind
    except env.ConfigError:
        return None  # a bad URL fails when a run starts, with its message; loading goes on


def _show_engine(spec: dg.AssetSpec, engine: str | None) -> dg.AssetSpec:
    if engine is None or WAREHOUSE_KIND not in spec.kinds:
        return spec
    return spec.replace_attributes(kinds=(set(spec.kinds) - {WAREHOUSE_KIND}) | {engine})


@dg.definitions
def defs() -> dg.Definitions:
    from dataeng_assets.defs.analytics import assets as analytics_assets
    from dataeng_assets.defs.automation.alerts import quality_alerts
    from dataeng_assets.defs.automation.jobs import user_activity_job, user_analytics_job, warehouse_job
    from dataeng_assets.defs.automation.optimizer import optimizer_on_failure, optimizer_on_success
    from dataeng_assets.defs.automation.schedules import user_analytics_schedule
    from dataeng_assets.defs.automation.sensors import events_arrival_sensor
    from dataeng_assets.defs.pipelines import pipeline_definitions
    from dataeng_assets.defs.platform import assets as platform_assets
    from dataeng_assets.defs.quality.checks import quality_checks
    from dataeng_assets.defs.streaming import assets as streaming_assets
    from dataeng_assets.defs.warehouse import extract as extract_assets
    from dataeng_assets.lib import env
    from dataeng_assets.lib.dbt import prepare_manifest

    prepare_manifest()  # normally built by `make`; parsed here only when missing (a fresh clone)
    from dataeng_assets.defs.resources import build_resources
    from dataeng_assets.defs.warehouse import activity as activity_assets
    from dataeng_assets.defs.warehouse import dbt as dbt_assets_module

    engine = _warehouse_engine()
    loaded = dg.load_assets_from_modules(
        [analytics_assets, extract_assets, dbt_assets_module, activity_assets, platform_assets, streaming_assets]
    )
    assets = dg.map_asset_specs(lambda spec: _show_engine(spec, engine), loaded)
    platform = dg.Definitions(
        assets=assets,
        asset_checks=quality_checks([a for a in loaded if isinstance(a, dg.AssetsDefinition)]),
        jobs=[user_analytics_job, warehouse_job, user_activity_job, streaming_assets.stream_job],
        schedules=[user_analytics_schedule],
        sensors=[events_arrival_sensor, optimizer_on_success, optimizer_on_failure, quality_alerts,
                 streaming_assets.stream_sensor(default_running=env.kafka_settings().bootstrap is not None)],
        resources=build_resources(),
    )
    return dg.Definitions.merge(platform, pipeline_definitions())  # kinds already name the engine
