"""Incremental extraction by watermark from SQLite and from real PostgreSQL."""

import sqlite3
from datetime import date

import dagster as dg
import pytest

from dataeng_assets.defs.resources import build_resources
from dataeng_assets.defs.warehouse.extract import extract_assets
from dataeng_assets.lib import env
from dataeng_assets.lib.generate import WorldSpec, generate
from dataeng_assets.lib.warehouse import Warehouse

SPEC = WorldSpec(days=3, end_date=date(2024, 1, 16), users=60, events_per_day=400)


@pytest.fixture(params=["sqlite", "postgres"])
def source(request, data_home, monkeypatch):
    if request.param == "postgres":
        monkeypatch.setenv("DATAENG_SOURCE_URL", request.getfixturevalue("pg_url"))
    generate(SPEC, env.landing_location(), env.source_database(), progress=False)
    return request.param


def source_exec(sql: str, params=()):
    db = env.source_database()
    if db.kind == "sqlite":
        con = sqlite3.connect(db.path)
        with con:
            con.execute(sql, params)
        con.close()
    else:
        import psycopg

        with psycopg.connect(db.url) as conn:
            conn.execute(sql.replace("?", "%s"), params)


def extract(config=None):
    run_config = {"ops": {a.op.name: {"config": config} for a in extract_assets}} if config else None
    result = dg.materialize(extract_assets, resources=build_resources(), run_config=run_config, raise_on_error=False)
    md = {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
          for e in result.get_asset_materialization_events()}
    return result, md


def wh(sql):
    with Warehouse(env.warehouse_database()).session() as s:
        return s.execute(sql)


def test_incremental_runs_pick_up_only_changes(source):
    result, md = extract()
    assert result.success
    assert md["customers"]["rows_extracted"] == 60 and md["customers"]["watermark_before"] == "none (first load)"
    n_orders = wh("SELECT count(*) FROM raw.orders")[0][0]
    assert n_orders == md["orders"]["rows_extracted"] > 0

    def at_watermark(table, column="updated_at"):  # re-read on purpose: `>=` the watermark
        return wh(f"SELECT count(*) FROM raw.{table} WHERE {column} = "
                  f"(SELECT watermark FROM raw._watermarks WHERE table_name = '{table}')")[0][0]

    boundary = {t: at_watermark(t) for t in ("customers", "orders", "products")}
    seven_at_boundary = wh("SELECT count(*) FROM raw.customers WHERE customer_id = 7 AND updated_at = "
                           "(SELECT watermark FROM raw._watermarks WHERE table_name = 'customers')")[0][0]
    # In the source: one customer changes segment, one new order arrives.
    source_exec("UPDATE customers SET segment = 'corporate', updated_at = ? WHERE customer_id = 7", ("2024-02-01 10:00:00",))
    source_exec("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", (999_999, 7, "2024-02-01", "pending", "2024-02-01 10:00:00", "2024-02-01 10:00:00"))
    _, md2 = extract()
    # the changed customer, plus the rows still at the old watermark
    assert md2["customers"]["rows_extracted"] == 1 + boundary["customers"] - seven_at_boundary
    assert md2["orders"]["rows_extracted"] == 1 + boundary["orders"]
    assert md2["products"]["rows_extracted"] == boundary["products"]  # unchanged: only the boundary rows
    assert wh("SELECT segment FROM raw.customers WHERE customer_id = 7")[0][0] == "corporate"
    assert wh("SELECT count(*) FROM raw.orders")[0][0] == n_orders + 1
    assert wh("SELECT count(*) FROM raw.customers")[0][0] == 60  # merged, not appended
    assert str(md2["customers"]["watermark_after"]).startswith("2024-02-01 10:00:00")
    # the lake's change log holds one batch per extraction, with exactly the rows it extracted
    import pyarrow.parquet as pq

    batches = sorted((env.data_home() / "lake" / "lake" / "source" / "customers").glob("batch=*/part-00000.parquet"))
    assert [pq.read_metadata(b).num_rows for b in batches] == [60, md2["customers"]["rows_extracted"]]
    assert md2["customers"]["lake_batch"].endswith(batches[-1].parent.name)


def test_watermark_does_not_advance_when_the_load_fails(source):
    assert extract()[0].success
    before = wh("SELECT table_name, watermark FROM raw._watermarks ORDER BY 1")
    source_exec("UPDATE customers SET country = 'NL', updated_at = ? WHERE customer_id = 3", ("2024-03-01 00:00:00",))
    from dataeng_assets.lib import warehouse as whmod

    with pytest.MonkeyPatch.context() as mp:
        for cls in (whmod.DuckDBSession, whmod.PostgresSession):
            def failing(self, sql, params=None, _orig=cls.execute):
                if sql.startswith('INSERT INTO "raw"."customers"'):
                    raise RuntimeError("load failed mid-way")  # not transient: no retry wait
                return _orig(self, sql, params)
            mp.setattr(cls, "execute", failing)
        result, _ = extract()
    assert not result.success
    assert wh("SELECT table_name, watermark FROM raw._watermarks ORDER BY 1") == before
    assert wh("SELECT country FROM raw.customers WHERE customer_id = 3")[0][0] != "NL"
    _, md = extract()  # the next run picks the change up
    assert md["customers"]["rows_extracted"] == 1
    assert wh("SELECT country FROM raw.customers WHERE customer_id = 3")[0][0] == "NL"


def test_deleted_rows_are_reported_and_full_refresh_reloads(source):
    assert extract()[0].success
    source_exec("DELETE FROM payments WHERE payment_id IN (1, 2)")
    _, md = extract()
    assert md["payments"]["deleted_in_source"] == 2
    assert wh("SELECT count(*) FROM raw.payments WHERE _deleted")[0][0] == 2
    _, md = extract({"full_refresh": True})
    assert md["payments"]["full_refresh"] is True
    assert wh("SELECT count(*) FROM raw.payments")[0][0] == md["payments"]["rows_extracted"]
    assert wh("SELECT count(*) FROM raw.payments WHERE _deleted")[0][0] == 0


def test_types_survive_extraction(source):
    assert extract()[0].success
    row = wh("SELECT amount FROM raw.payments ORDER BY payment_id LIMIT 1")[0][0]
    from decimal import Decimal

    assert isinstance(row, Decimal) and row == row.quantize(Decimal("0.01"))
    ts = wh("SELECT updated_at FROM raw.customers ORDER BY customer_id LIMIT 1")[0][0]
    assert ts.tzinfo is not None
