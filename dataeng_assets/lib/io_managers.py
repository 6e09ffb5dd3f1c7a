"""IO managers: partitioned Parquet in the lake, and partition-replacing warehouse tables.

Both accept Arrow tables, Arrow record-batch readers (streamed, bounded memory) and pandas
frames, and report `row_count` and where the data went. Both handle a run over a partition range
(single-run backfill) as one output spanning every partition in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from dataeng_assets.lib.lake import DuckDBQuery, LakeDataset
from dataeng_assets.lib.resources import LakeResource, WarehouseResource
from dataeng_assets.lib.retry import with_backoff
from dataeng_assets.lib.warehouse import qualified


def _as_arrow(obj: Any) -> pa.Table | pa.RecordBatchReader:
    if isinstance(obj, (pa.Table, pa.RecordBatchReader)):
        return obj
    if isinstance(obj, pd.DataFrame):
        return pa.Table.from_pandas(obj, preserve_index=False)
    if isinstance(obj, LakeDataset):
        return obj.dataset().scanner().to_reader()
    if isinstance(obj, DuckDBQuery):
        return obj.reader()
    raise TypeError(f"expected an Arrow table/reader or a pandas DataFrame, got {type(obj).__name__}")


def _partition_keys(context) -> list[str] | None:
    return list(context.asset_partition_keys) if context.has_asset_partitions else None


def _wants(context: dg.InputContext) -> Any:
    return getattr(context.dagster_type, "typing_type", None)


class LakeIOManager(dg.ConfigurableIOManager):
    """Partitioned Parquet on a local folder or S3 (`DATAENG_LAKE_URL`).

    Downstream inputs annotated `LakeDataset` get a lazy handle (paths for DuckDB to scan);
    `pa.Table` or `pd.DataFrame` annotations get the rows.
    """

    lake: LakeResource


    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        lake = self.lake.get()
        column = (context.definition_metadata or {}).get("partition_column", "date")
        partitions = _partition_keys(context)
        data = obj if isinstance(obj, DuckDBQuery) else _as_arrow(obj)
        written = with_backoff(
            lambda: lake.write(context.asset_key.path, data, partitions, column),
            what=f"write {context.asset_key.to_user_string()}",
            log=context.log,
            retry_streams=not isinstance(obj, pa.RecordBatchReader),
        )
        rows = sum(w.rows for w in written)
        meta: dict[str, Any] = {
            "row_count": dg.MetadataValue.int(rows),
            "bytes": dg.MetadataValue.int(sum(w.bytes for w in written)),
            "files": dg.MetadataValue.int(len(written)),
            "path": dg.MetadataValue.path(written[0].path if len(written) == 1 else lake.url(lake.dataset_dir(context.asset_key.path))),
        }
        if len(written) > 1:
            meta["rows_by_partition"] = dg.MetadataValue.json({w.partition: w.rows for w in written})
        context.add_output_metadata(meta)

    def load_input(self, context: dg.InputContext) -> Any:
        lake = self.lake.get()
        key = context.asset_key
        column = (context.upstream_output.definition_metadata or {}).get("partition_column", "date") if context.upstream_output else "date"
        handle = lake.handle(key.path, _partition_keys(context), column)
        wanted = _wants(context)
        if wanted is LakeDataset:
            return handle
        table = handle.to_table()
        if wanted is pd.DataFrame:
            return table.to_pandas()
        return table


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Tables in the warehouse (`DATAENG_WAREHOUSE_URL`), one per asset: `[schema, table]`.

    A partitioned output replaces exactly the rows of its partition(s), selected by the
    `partition_expr` definition metadata, in one transaction: a rerun gives the same table and a
    failed write leaves the previous rows. New columns are added; incompatible type changes are
    refused with a clear error.
    """

    warehouse: WarehouseResource

    @staticmethod
    def _table(key: dg.AssetKey) -> tuple[str, str]:
        if len(key.path) != 2:
            raise ValueError(f"warehouse asset keys are [schema, table], got {key.path}")
        return key.path[0], key.path[1]

    @staticmethod
    def _where(context, partition_expr: str | None) -> tuple[str | None, list]:
        if not context.has_asset_partitions:
            return None, []
        if not partition_expr:
            raise ValueError(
                f"{context.asset_key.to_user_string()} is partitioned: set definition metadata "
                "'partition_expr' to the column (or SQL expression) holding the partition"
            )
        window = context.asset_partitions_time_window
        start, end = window.start, window.end
        # Date partition columns compare against dates; timestamps against timestamps.
        params = [start.date(), end.date()] if _is_daily(start, end) else [start, end]
        return f"({partition_expr}) >= $1 AND ({partition_expr}) < $2", params

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        schema, table = self._table(context.asset_key)
        meta = context.definition_metadata or {}
        where, params = self._where(context, meta.get("partition_expr"))
        wh = self.warehouse.get()
        with wh.session() as s:
            result = s.replace_rows(schema, table, _as_arrow(obj), where, params)
        context.add_output_metadata(
            {
                "row_count": dg.MetadataValue.int(result.inserted),
                "rows_replaced": dg.MetadataValue.int(result.deleted),
                "table": dg.MetadataValue.text(f"{schema}.{table}"),
                "warehouse": dg.MetadataValue.text(wh.dialect),
                **(
                    {"added_columns": dg.MetadataValue.json(result.added_columns)}
                    if result.added_columns
                    else {}
                ),
            }
        )

    def load_input(self, context: dg.InputContext) -> Any:
        schema, table = self._table(context.asset_key)
        meta = (context.upstream_output.definition_metadata or {}) if context.upstream_output else {}
        where, params = self._where(context, meta.get("partition_expr"))
        sql = f"SELECT * FROM {qualified(schema, table)}" + (f" WHERE {where}" if where else "")
        with self.warehouse.get().session(read_only=True) as s:
            table_ = s.to_arrow(sql, params)
        return table_.to_pandas() if _wants(context) is pd.DataFrame else table_


def _is_daily(start: datetime, end: datetime) -> bool:
    return start.time() == datetime.min.time() and end.time() == datetime.min.time()

