"""Incremental extraction of the OLTP source into the warehouse's raw schema (seed 004 Workflow 1,
step 4), one asset per table."""

import time
from datetime import datetime, timezone

import dagster as dg

from dataeng_assets.lib import env
from dataeng_assets.lib.extract import SOURCE_TABLES, Source, extract_table
from dataeng_assets.lib.resources import LakeResource, WarehouseResource
from dataeng_assets.lib.retry import retry_transient
from dataeng_assets.lib.stepstats import step_metrics

GROUP = "extract"
OWNERS = ["team:data-platform"]


class ExtractConfig(dg.Config):
    full_refresh: bool = False  # ignore the watermark and reload the whole table
    detect_deletes: bool = True  # compare keys with the source to flag rows deleted there


def extract_asset(name: str) -> dg.AssetsDefinition:
    table = SOURCE_TABLES[name]

    @dg.asset(
        key=["raw", name],
        group_name=GROUP,
        owners=OWNERS,
        kinds={"warehouse", "parquet"},
        pool="warehouse",
        description=f"One row per source {name[:-1] if name.endswith('s') else name} (key {table.key}), "
        f"the latest version extracted from the OLTP source incrementally on {table.watermark}; "
        "rows deleted in the source are kept with _deleted = true.",
        metadata={"watermark_column": table.watermark, "primary_key": table.key},
    )
    def _extract(context: dg.AssetExecutionContext, config: ExtractConfig, warehouse: WarehouseResource,
                 lake: LakeResource):
        source = Source(env.source_database())
        started = time.perf_counter()
        # Sortable batch names for the lake's change log: extraction time, then the run.
        batch_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%fZ}-{context.run_id[:8]}"
        with step_metrics(context) as metrics, retry_transient(context), warehouse.session() as s, metrics.sql("extract"):
            result = extract_table(s, source, table, config.full_refresh, config.detect_deletes,
                                   lake=lake.get(), batch_id=batch_id)
        metrics.input(rows=result.rows)
        return dg.MaterializeResult(metadata={
            "row_count": result.rows_total,
            "rows_extracted": result.rows,
            "deleted_in_source": result.deleted_in_source,
            "watermark_before": str(result.watermark_before) if result.watermark_before else "none (first load)",
            "watermark_after": str(result.watermark_after) if result.watermark_after else "none",
            "full_refresh": result.full_refresh,
            "lake_batch": f"lake/source/{name}/batch={batch_id}",
            "duration_s": round(time.perf_counter() - started, 3),
        })

    _extract.__name__ = f"raw_{name}"
    return _extract


extract_assets = [extract_asset(name) for name in SOURCE_TABLES]
