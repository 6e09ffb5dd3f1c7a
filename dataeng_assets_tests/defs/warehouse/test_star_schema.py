"""The star schema built by dbt through Dagster, on DuckDB and on real PostgreSQL, against a
hand-made source whose expected values are worked out below."""

import sqlite3
from datetime import date

import dagster as dg
import pytest

from dataeng_assets.cli import run_job
from dataeng_assets.lib import env
from dataeng_assets.lib.generate import SOURCE_DDL
from dataeng_assets.lib.warehouse import Warehouse

# customer_id: LTV from payments (seed bins, right-closed): 100 → low, 500 → medium, 500.01 → high,
# 99.99 → low, 0 (an order without payments) → no segment.
CUSTOMERS = {1: 100.00, 2: 500.00, 3: 500.01, 4: 99.99, 5: 0.0}


def create_source(path):
    con = sqlite3.connect(path)
    with con:
        for table, cols in SOURCE_DDL.items():
            con.execute(f'DROP TABLE IF EXISTS "{table}"')
            con.execute(f'CREATE TABLE "{table}" ({", ".join(f"{c} {t}" for c, t in cols)})')
        for cid in CUSTOMERS:
            con.execute("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (cid, f"C{cid}", f"c{cid}@example.com", "consumer", "US", "2023-06-01",
                         "2023-06-01 00:00:00", "2023-06-01 00:00:00"))
        con.execute("INSERT INTO products VALUES (1, 'P1', 'books', 10.00, '2023-01-01 00:00:00', '2023-01-01 00:00:00')")
        order_id = 0
        for cid, ltv in CUSTOMERS.items():
            # two orders per customer on the 14th and 15th; the LTV split over two payments
            for day, share in (("2024-01-14", 0.5), ("2024-01-15", 0.5)):
                order_id += 1
                con.execute("INSERT INTO orders VALUES (?, ?, ?, 'completed', ?, ?)",
                            (order_id, cid, day, f"{day} 12:00:00", f"{day} 12:00:00"))
                con.execute("INSERT INTO order_items VALUES (?, ?, 1, 1, 10.00, 0.00, ?, ?)",
                            (order_id, order_id, f"{day} 12:00:00", f"{day} 12:00:00"))
                if ltv:
                    amount = round(ltv * share, 2) if day == "2024-01-14" else round(ltv - round(ltv * 0.5, 2), 2)
                    con.execute("INSERT INTO payments VALUES (?, ?, 'card', ?, ?)", (order_id, order_id, amount, f"{day} 12:05:00"))
    con.close()


def source(sql, params=()):
    con = sqlite3.connect(env.source_database().path)
    with con:
        con.execute(sql, params)
    con.close()


def wh(sql, params=None):
    with Warehouse(env.warehouse_database()).session() as s:
        return s.execute(sql, params)


def build(first="2024-01-14", last="2024-01-16"):
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job("warehouse_job", first, last, instance)
    return result


@pytest.fixture
def world(warehouse_url):
    path = env.source_database().path
    import os

    os.makedirs(os.path.dirname(path), exist_ok=True)
    create_source(path)
    return warehouse_url


def test_star_schema_scd2_point_in_time_and_marts(world):
    first = build()
    assert first.success
    failed = {(e.asset_key.to_user_string(), e.check_name, e.severity.value)
              for e in first.get_asset_check_evaluations() if not e.passed}
    # no orders on the 16th yet: a warning, not a stop
    assert failed == {("analytics/fact_sales", "row_count", "WARN")}
    # marts: the hand-computed LTVs and the seed's bins at their exact boundaries
    rows = wh("SELECT customer_id, first_order, most_recent_order, number_of_orders, customer_lifetime_value, segment "
              "FROM analytics.customer_metrics ORDER BY customer_id")
    assert [(r[0], r[3], float(r[4]), r[5]) for r in rows] == [
        (1, 2, 100.0, "low"), (2, 2, 500.0, "medium"), (3, 2, 500.01, "high"), (4, 2, 99.99, "low"), (5, 2, 0.0, None)]
    assert {(r[1], r[2]) for r in rows} == {(date(2024, 1, 14), date(2024, 1, 15))}

    # Customer 1 changes segment twice; an order is placed between the two changes.
    source("UPDATE customers SET segment = 'corporate', updated_at = '2024-01-16 09:00:00' WHERE customer_id = 1")
    assert build().success
    source("INSERT INTO orders VALUES (100, 1, '2024-01-16', 'completed', '2024-01-16 10:00:00', '2024-01-16 10:00:00')")
    source("INSERT INTO order_items VALUES (100, 100, 1, 2, 10.00, 0.00, '2024-01-16 10:00:00', '2024-01-16 10:00:00')")
    source("UPDATE customers SET segment = 'home_office', updated_at = '2024-01-16 18:00:00' WHERE customer_id = 1")
    third = build()
    assert third.success
    # including the point-in-time rule: the order between two segment changes maps to the middle version
    assert [e.check_name for e in third.get_asset_check_evaluations() if not e.passed] == []

    versions = wh("SELECT segment, valid_from, valid_to, is_current FROM analytics.dim_customer "
                  "WHERE customer_id = 1 ORDER BY valid_from")
    assert [v[0] for v in versions] == ["consumer", "corporate", "home_office"]
    assert [v[3] for v in versions] == [False, False, True]
    assert versions[0][2] == versions[1][1] and versions[1][2] == versions[2][1]  # contiguous
    assert wh("SELECT count(*) FROM analytics.dim_customer WHERE is_current")[0][0] == len(CUSTOMERS)
    # point in time: the order between the changes joins the 'corporate' version; earlier ones 'consumer'
    by_order = dict(wh("SELECT f.order_id, c.segment FROM analytics.fact_sales f "
                       "JOIN analytics.dim_customer c ON c.customer_key = f.customer_key WHERE c.customer_id = 1"))
    assert by_order == {1: "consumer", 2: "consumer", 100: "corporate"}
    sales = wh("SELECT segment, total_sales, transaction_count FROM analytics.sales_by_month_segment ORDER BY segment")
    assert [(s, float(t), n) for s, t, n in sales] == [("consumer", 100.0, 10), ("corporate", 20.0, 1)]


def test_failing_dbt_test_shows_as_a_failed_check(world):
    source("UPDATE orders SET status = 'lost_in_transit' WHERE order_id = 3")
    result = build()
    failed = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert "accepted_values_stg_orders_order_status__completed__cancelled__returned__pending" in failed
    assert failed["accepted_values_stg_orders_order_status__completed__cancelled__returned__pending"].asset_key.path == ["staging", "stg_orders"]


def test_range_equals_partition_by_partition(world, tmp_path, monkeypatch):
    if env.warehouse_database().kind != "duckdb":
        pytest.skip("one engine is enough for the equivalence; both build above")
    assert build("2024-01-14", "2024-01-15").success
    by_range = wh("SELECT * FROM analytics.fact_sales ORDER BY sale_id")
    monkeypatch.setenv("DATAENG_WAREHOUSE_URL", f"duckdb://{tmp_path / 'other.duckdb'}")
    assert build("2024-01-14", "2024-01-14").success
    assert build("2024-01-15", "2024-01-15").success
    assert wh("SELECT * FROM analytics.fact_sales ORDER BY sale_id") == by_range
    assert build("2024-01-15", "2024-01-15").success  # rerun: the day is replaced, not appended
    assert wh("SELECT * FROM analytics.fact_sales ORDER BY sale_id") == by_range
