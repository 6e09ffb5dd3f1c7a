"""The Parquet lake IO manager on a local folder and on S3 (moto server): single partitions,
ranges, lazy handles, and atomic writes."""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from dataeng_assets.defs.partitions import daily_partitions
from dataeng_assets.defs.resources import build_resources
from dataeng_assets.lib import env
from dataeng_assets.lib.lake import Lake, LakeDataset

KEY = ["lake", "test", "events"]


@pytest.fixture(params=["local", "s3"])
def lake_url(request, data_home, monkeypatch) -> str:
    if request.param == "local":
        return str(data_home / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    url = f"s3://{bucket}/lake"
    monkeypatch.setenv("DATAENG_LAKE_URL", url)
    return url


def make_asset(produce):
    @dg.asset(
        key=KEY, partitions_def=daily_partitions, io_manager_key="lake_io_manager",
        metadata={"partition_column": "date"}, backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def events(context: dg.AssetExecutionContext):
        return produce(context)

    return events


def day_rows(context, n: int = 4, skip: tuple = ()) -> pa.Table:
    days = [date.fromisoformat(k) for k in context.partition_keys if k not in skip]
    return pa.table(
        {
            "date": pa.array([d for d in days for _ in range(n)], pa.date32()),
            "v": pa.array([i for _ in days for i in range(n)], pa.int64()),
        }
    )


def run(assets, partition_key=None, range_=None, selection=None):
    tags = {"dagster/asset_partition_range_start": range_[0], "dagster/asset_partition_range_end": range_[1]} if range_ else None
    return dg.materialize(assets, partition_key=partition_key, tags=tags, resources=build_resources(), raise_on_error=False, selection=selection)


def read(day: str) -> pa.Table:
    lake = Lake(env.lake_location())
    return lake.handle(KEY, [day]).to_table()


def test_single_partition_round_trip(lake_url):
    result = run([make_asset(day_rows)], "2024-01-14")
    assert result.success
    md = result.get_asset_materialization_events()[0].materialization.metadata
    assert md["row_count"].value == 4 and md["bytes"].value > 0
    assert md["path"].value.endswith("lake/test/events/date=2024-01-14/part-00000.parquet")
    assert read("2024-01-14").column("v").to_pylist() == [0, 1, 2, 3]


def test_range_writes_every_partition_and_reads_back(lake_url):
    produce = lambda c: day_rows(c, skip=("2024-01-15",))  # noqa: E731 - one empty day in the range
    result = run([make_asset(produce)], range_=("2024-01-14", "2024-01-16"))
    assert result.success
    md = result.get_asset_materialization_events()[0].materialization.metadata
    assert md["rows_by_partition"].value == {"2024-01-14": 4, "2024-01-15": 0, "2024-01-16": 4}
    assert read("2024-01-15").num_rows == 0  # an empty day still gets a file: a rerun replaces it
    seen = {}

    @dg.asset(partitions_def=daily_partitions, ins={"events": dg.AssetIn(key=KEY)},
              backfill_policy=dg.BackfillPolicy.single_run())
    def downstream(events: LakeDataset) -> None:
        seen["partitions"] = events.partitions
        seen["rows"] = events.to_table().num_rows

    assert run([make_asset(produce), downstream], range_=("2024-01-14", "2024-01-16"), selection=[downstream]).success
    assert seen == {"partitions": ["2024-01-14", "2024-01-15", "2024-01-16"], "rows": 8}


def test_pandas_output_and_table_input(lake_url):
    seen = {}

    @dg.asset(partitions_def=daily_partitions, ins={"events": dg.AssetIn(key=KEY)})
    def as_table(events: pa.Table) -> None:
        seen["v"] = events.column("v").to_pylist()

    producer = make_asset(lambda c: day_rows(c).to_pandas())
    assert run([producer], "2024-01-14").success
    assert run([producer, as_table], "2024-01-14", selection=[as_table]).success
    assert seen["v"] == [0, 1, 2, 3]


def test_failed_write_leaves_the_previous_file(lake_url):
    assert run([make_asset(day_rows)], "2024-01-14").success

    def broken(context):
        good = day_rows(context, n=1000)

        def batches():
            yield good.to_batches()[0].slice(0, 10)
            raise ValueError("upstream died mid-stream")

        return pa.RecordBatchReader.from_batches(good.schema, batches())

    assert not run([make_asset(broken)], "2024-01-14").success
    assert read("2024-01-14").column("v").to_pylist() == [0, 1, 2, 3]
    lake = Lake(env.lake_location())
    folder = lake.partition_dir(KEY, "2024-01-14")
    files = [i.base_name for i in lake.fs.get_file_info(pafs.FileSelector(folder))]
    assert files == ["part-00000.parquet"]  # no partial or temp file next to it


def test_rows_for_another_day_are_refused(lake_url):
    def wrong(context):
        t = day_rows(context)
        return t.set_column(0, "date", pa.array([date(2024, 3, 1)] * t.num_rows, pa.date32()))

    result = run([make_asset(wrong)], "2024-01-14")
    assert not result.success
    with pytest.raises(Exception, match="not found"):
        read("2024-01-14")


def test_local_files_are_plain_parquet(data_home):
    assert run([make_asset(day_rows)], "2024-01-14").success
    path = data_home / "lake" / "lake" / "test" / "events" / "date=2024-01-14" / "part-00000.parquet"
    assert pq.read_table(path).num_rows == 4


def duckdb_rows(days, n=4):
    """A DuckDBQuery over an in-memory table: the lake writes it with DuckDB's Parquet writer."""
    import duckdb

    from dataeng_assets.lib.lake import DuckDBQuery

    con = duckdb.connect()
    con.execute("CREATE TABLE t (date DATE, v BIGINT)")
    for d in days:
        con.execute("INSERT INTO t SELECT CAST($1 AS DATE), range FROM range($2)", [d, n])
    return DuckDBQuery(con, "SELECT date, v FROM t")


def test_duckdb_query_range_and_refusal(lake_url):
    produce = lambda c: duckdb_rows(["2024-01-14", "2024-01-16"])  # noqa: E731 - the 15th has no rows
    result = run([make_asset(produce)], range_=("2024-01-14", "2024-01-16"))
    assert result.success
    md = result.get_asset_materialization_events()[0].materialization.metadata
    assert md["rows_by_partition"].value == {"2024-01-14": 4, "2024-01-15": 0, "2024-01-16": 4}
    assert sorted(read("2024-01-16").column("v").to_pylist()) == [0, 1, 2, 3]
    assert read("2024-01-15").num_rows == 0
    assert not run([make_asset(lambda c: duckdb_rows(["2024-03-01"]))], "2024-01-14").success
    assert sorted(read("2024-01-14").column("v").to_pylist()) == [0, 1, 2, 3]  # the previous file stands
