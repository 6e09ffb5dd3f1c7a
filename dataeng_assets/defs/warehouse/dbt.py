"""The Kimball star schema in dbt, as Dagster assets (dagster-dbt), with dbt tests as checks.

Two asset definitions over one manifest: the dimensions, staging, snapshot and marts build as a
whole; the facts are daily-partitioned and get their window as --vars, so a range (single-run
backfill) is one dbt invocation.
"""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dataeng_assets.defs.partitions import daily_partitions
from dataeng_assets.lib.dbt import MANIFEST, Translator, apply_dbt_env, build_args, partition_vars

FACTS = "tag:daily_partitioned"  # the models/facts folder (dbt_project.yml)
ACTIVITY = "tag:activity"  # models/activity: views over the user-activity ETL's table


@dbt_assets(manifest=MANIFEST, dagster_dbt_translator=Translator(), exclude=f"{FACTS} {ACTIVITY}",
            name="dbt_warehouse", pool="warehouse")
def dbt_warehouse(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    apply_dbt_env()
    yield from dbt.cli(build_args("build"), context=context).stream()


@dbt_assets(
    manifest=MANIFEST,
    dagster_dbt_translator=Translator(),
    select=FACTS,
    name="dbt_facts",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="warehouse",
)
def dbt_facts(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    window = context.partition_time_window
    apply_dbt_env()
    args = build_args("build", partition_vars(window.start.date(), window.end.date()))
    yield from dbt.cli(args, context=context).stream()


@dbt_assets(manifest=MANIFEST, dagster_dbt_translator=Translator(), select=ACTIVITY, name="dbt_activity", pool="warehouse")
def dbt_activity(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    apply_dbt_env()
    yield from dbt.cli(build_args("build"), context=context).stream()
