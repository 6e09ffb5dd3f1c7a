"""Defect injection: for every check type, a partition with exactly that defect fails exactly
that check, and clean data passes them all; on real DuckDB and real PostgreSQL."""

import datetime as dt

import pyarrow as pa
import pytest

from dataeng_assets.lib import env
from dataeng_assets.lib.quality.engine import evaluate, warehouse_relation
from dataeng_assets.lib.quality.pandera_rules import gate_rules
from dataeng_assets.lib.quality.rules import parse_rules
from dataeng_assets.lib.warehouse import Warehouse

DAY = "2024-03-05"
D = dt.date(2024, 3, 5)
RULES = """
tables:
  shop.orders:
    partition_column: order_date
    checks:
      - {type: uniqueness, column: order_id}
      - {type: null_rate, column: email, threshold: 0.1}
      - {type: range, column: quantity, min: 1, max: 10}
      - {type: referential_integrity, column: customer_id, references: customers.customer_id}
      - {type: point_in_time, column: customer_key, references: dim_customer.customer_key, at: created_at}
      - {type: row_count, min: 10}
      - {type: freshness, column: created_at, max_age_hours: 6}
      - {type: distribution, column: amount, expected_mean: 100, expected_stddev: 10.5, tolerance: 0.2}
      - {type: regex, column: email, pattern: '^[a-z0-9.]+@[a-z0-9.]+\\.[a-z]{2,}$'}
      - {type: accepted_values, column: status, values: [new, paid, shipped]}
      - {type: custom, name: shipped_has_date, sql: "status <> 'shipped' OR shipped_at IS NOT NULL"}
"""


def clean_rows() -> list[dict]:
    rows = []
    for i in range(20):
        created = dt.datetime(2024, 3, 5, i)
        status = ["new", "paid", "shipped"][i % 3]
        rows.append({
            "order_id": i + 1, "order_date": D, "customer_id": 1 + i % 4, "customer_key": f"c{1 + i % 4}-v2",
            "email": f"user{i}@example.com", "amount": 90.0 if i % 2 == 0 else 110.0, "status": status,
            "quantity": 1 + i % 5,
            "created_at": created, "shipped_at": created if status == "shipped" else None,
        })
    return rows


def defect(kind: str, rows: list[dict]) -> list[dict]:
    if kind == "uniqueness":
        rows[1]["order_id"] = rows[0]["order_id"]
    elif kind == "null_rate":
        for r in rows[:3]:
            r["email"] = None
    elif kind == "range":
        rows[4]["quantity"] = 0
    elif kind == "referential_integrity":
        rows[6]["customer_id"] = 999
    elif kind == "point_in_time":
        rows[7]["customer_key"] = "c4-v3"  # a version of a known customer, valid only from next year
    elif kind == "row_count":
        del rows[:14]  # whole pairs removed: mean and spread unchanged, latest row kept
    elif kind == "freshness":
        for r in rows:
            r["created_at"] = r["created_at"].replace(hour=0, minute=30)
            r["shipped_at"] = r["created_at"] if r["shipped_at"] else None
    elif kind == "distribution":
        for r in rows:
            r["amount"] += 50
    elif kind == "regex":
        rows[8]["email"] = "not-an-email"
    elif kind == "accepted_values":
        rows[9]["status"] = "lost"
    elif kind == "custom":
        rows[2]["shipped_at"] = None  # row 2 is shipped
    return rows


SCHEMA = pa.schema([
    ("order_id", pa.int64()), ("order_date", pa.date32()), ("customer_id", pa.int64()), ("customer_key", pa.string()),
    ("email", pa.string()), ("amount", pa.float64()), ("status", pa.string()), ("quantity", pa.int32()),
    ("created_at", pa.timestamp("us")), ("shipped_at", pa.timestamp("us")),
])


def load(session, rows: list[dict]) -> None:
    session.replace_rows("shop", "orders", pa.Table.from_pylist(rows, schema=SCHEMA))
    session.replace_rows("shop", "customers", pa.table({"customer_id": pa.array([1, 2, 3, 4], pa.int64())}))
    versions = [(f"c{c}-v2", c, dt.datetime(2020, 1, 1), dt.datetime(2025, 1, 1)) for c in (1, 2, 3, 4)]
    versions.append(("c4-v3", 4, dt.datetime(2025, 1, 1), None))
    session.replace_rows("shop", "dim_customer", pa.Table.from_pylist(
        [dict(zip(["customer_key", "customer_id", "valid_from", "valid_to"], v, strict=True)) for v in versions],
        schema=pa.schema([("customer_key", pa.string()), ("customer_id", pa.int64()),
                          ("valid_from", pa.timestamp("us")), ("valid_to", pa.timestamp("us"))]),
    ))


def failing(session) -> set[str]:
    [table] = parse_rules(RULES)
    rel = warehouse_relation(session, "shop", "orders", "order_date", [DAY])
    results = evaluate(rel, table.rules)
    assert set(results) == {r.name for r in table.rules}
    return {name for name, per in results.items() if not per[DAY].passed}


TYPES = ["uniqueness", "null_rate", "range", "referential_integrity", "point_in_time", "row_count", "freshness",
         "distribution", "regex", "accepted_values", "custom"]


@pytest.fixture
def session(warehouse_url):
    with Warehouse(env.warehouse_database()).session() as s:
        yield s


def test_clean_partition_passes_every_check(session):
    load(session, clean_rows())
    assert failing(session) == set()


@pytest.mark.parametrize("kind", TYPES)
def test_each_defect_fails_exactly_its_check(session, kind):
    load(session, defect(kind, clean_rows()))
    [name] = failing(session)
    assert name.split("_")[0] == kind.split("_")[0] or (kind == "custom" and name == "shipped_has_date"), name


def test_failures_carry_counts_samples_and_thresholds(session):
    rows = clean_rows()
    rows[9]["status"] = "lost"
    rows[10]["status"] = "lost"
    load(session, rows)
    [table] = parse_rules(RULES)
    rel = warehouse_relation(session, "shop", "orders", "order_date", [DAY])
    out = evaluate(rel, table.rules)["accepted_values_status"][DAY]
    assert (out.passed, out.failing_rows, out.sample, out.rows) == (False, 2, ["lost"], 20)


def test_other_partitions_are_not_read(session):
    rows = clean_rows()
    other = defect("accepted_values", clean_rows())
    for r in other:
        r["order_date"] = D + dt.timedelta(days=1)
        r["order_id"] += 100
    load(session, rows + other)
    assert failing(session) == set()


def test_pandera_table_level_uniqueness_catches_a_planted_duplicate(session):
    import pandera.pandas as pa_

    model = pa_.DataFrameSchema({"order_id": pa_.Column("Int64", nullable=False),
                                 "status": pa_.Column(str, pa_.Check.isin(["new", "paid", "shipped"]))},
                                unique=["order_id"])
    schema_rule, gate, advisory = gate_rules("shop.orders", model)
    rows = defect("uniqueness", clean_rows())
    load(session, rows)
    rel = warehouse_relation(session, "shop", "orders", "order_date", [DAY])
    results = evaluate(rel, [schema_rule, *gate])
    assert {n for n, per in results.items() if not per[DAY].passed} == {"unique_order_id"}
    assert results["unique_order_id"][DAY].sample == ["1"]
