"""Pandera schemas become Dagster asset checks: blocking ERROR gates or WARN advice.

A check reads exactly the partitions of its run from the lake (a check's IO-manager input would
load every partition of the asset), validates lazily so every failure is collected, and
reports per failing column and check: how many rows, a few sample values, and the partitions.
"""


from collections.abc import Sequence

import dagster as dg
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import pyarrow as pa_arrow

from dataeng_assets.lib.resources import LakeResource

SAMPLE_SIZE = 5  # failure cases shown per failing check: enough to act on, no bulk PII


def arrow_to_pandas(table: pa_arrow.Table) -> pd.DataFrame:
    """Nullable integer columns stay integers (a NULL user_id must not turn ids into floats)."""
    ints = {t: pd.Int64Dtype() for t in (pa_arrow.int8(), pa_arrow.int16(), pa_arrow.int32(), pa_arrow.int64())}
    return table.to_pandas(types_mapper=ints.get)


def summarize_failures(err: pandera.errors.SchemaErrors, df: pd.DataFrame, partition_column: str | None) -> list[dict]:
    """Per failing (column, check): how many rows, a few sample values, and their partitions."""
    cases = err.failure_cases
    out = []
    for (column, check), group in cases.groupby(
        [cases["column"].fillna("<table>").astype(str), cases["check"].astype(str)], sort=True
    ):
        sample = [None if pd.isna(v) else str(v) for v in group["failure_case"].head(SAMPLE_SIZE)]
        failure = {"column": column, "check": check, "failing_rows": int(len(group)), "sample": sample}
        rows = pd.to_numeric(group["index"], errors="coerce").dropna().astype(int)
        if partition_column in df.columns and len(rows):
            days = df[partition_column].iloc[rows[rows < len(df)].to_numpy()].dropna().astype(str).unique()
            failure["partitions"] = sorted(days)[:10]
        out.append(failure)
    return out


def validate(schema: pa.DataFrameSchema, df: pd.DataFrame, partition_column: str | None = None) -> tuple[bool, list[dict]]:
    try:
        schema.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as err:
        return False, summarize_failures(err, df, partition_column)
    return True, []


def run_partition_keys(context, partitions_def: dg.PartitionsDefinition | None) -> list[str] | None:
    if partitions_def is None:
        return None
    return list(partitions_def.get_partition_keys_in_range(context.partition_key_range))


def pandera_lake_check(
    asset_key: dg.AssetKey,
    schema: pa.DataFrameSchema,
    partitions_def: dg.PartitionsDefinition | None,
    *,
    name: str,
    description: str,
    blocking: bool = True,
    partition_column: str = "date",
) -> dg.AssetChecksDefinition:
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN

    @dg.asset_check(asset=asset_key, name=name, description=description, blocking=blocking)
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
        keys = run_partition_keys(context, partitions_def)
        table = lake.get().handle(asset_key.path, keys, partition_column).to_table()
        passed, failures = validate(schema, arrow_to_pandas(table), partition_column)
        metadata = {
            "rows_checked": dg.MetadataValue.int(table.num_rows),
            "partitions": dg.MetadataValue.text(_span(keys)),
            "failing_checks": dg.MetadataValue.int(len(failures)),
        }
        if failures:
            metadata["failures"] = dg.MetadataValue.json(failures)
            metadata["summary"] = dg.MetadataValue.md(_markdown(failures))
        return dg.AssetCheckResult(passed=passed, severity=severity, metadata=metadata)

    return _check


def _span(keys: Sequence[str] | None) -> str:
    if not keys:
        return "unpartitioned"
    return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]} ({len(keys)})"


def _markdown(failures: list[dict]) -> str:
    rows = ["| column | check | failing rows | sample | partitions |", "|---|---|---|---|---|"]
    for f in failures:
        rows.append(
            f"| {f['column']} | {f['check']} | {f['failing_rows']} | {', '.join(map(str, f['sample']))} "
            f"| {', '.join(f.get('partitions', []))} |"
        )
    return "\n".join(rows)
