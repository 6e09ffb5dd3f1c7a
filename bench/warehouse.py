"""Benchmark: building the warehouse for N days (single-run backfill) through Dagster vs the same
extraction, dbt build and ETL SQL run directly; the seed's analytical queries on the result.

    python bench/warehouse.py [--days 30] [--events-per-day 1000000] [--customers 100000] [--keep DIR]

Steps: generate the world; materialize the user-analytics job for the range (the ETL merges into
its table); copy that home twice; (a) `warehouse_job` over the range in one run; (b) the same
work without Dagster: lib.extract for each table, `dbt build --vars` (dbt CLI), the ETL SQL through
the warehouse session. Then the seed's queries (sales by month x segment, customer LTV top 100),
20 runs each, p50/p95. Also `dagster definitions validate` time. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
END = date(2024, 1, 30)
BIN = Path(sys.executable).parent

QUERIES = {
    "sales_by_month_segment": """
        SELECT d.year, d.month_name, c.segment, SUM(f.total_amount) AS total_sales, COUNT(*) AS transaction_count
        FROM analytics.fact_sales f
        JOIN analytics.dim_date d ON f.date_key = d.date_key
        JOIN analytics.dim_customer c ON f.customer_key = c.customer_key
        WHERE d.year = 2024
        GROUP BY d.year, d.month_name, c.segment
        ORDER BY d.month_name, total_sales DESC""",
    "customer_ltv_top_100": """
        SELECT customer_id, customer_lifetime_value, segment
        FROM analytics.customer_metrics
        ORDER BY customer_lifetime_value DESC
        LIMIT 100""",
}


def sh(cmd: list[str], env: dict, what: str) -> float:
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{what} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.perf_counter() - started


def py(code: str, env: dict, what: str) -> float:
    return sh([sys.executable, "-c", code], env, what)


DAGSTER_JOB = """
import dagster as dg, sys
from dataeng_assets.cli import run_job
with dg.DagsterInstance.ephemeral() as i:
    r = run_job(sys.argv[1], sys.argv[2], sys.argv[3], i)
    assert r.success, [e.event_specific_data.error.to_string() for e in r.all_events if e.event_type_value == 'STEP_FAILURE']
"""

BARE = """
import os, subprocess, sys
from datetime import date, timedelta
from dataeng_assets.lib import env, sql
from dataeng_assets.lib.dbt import PROJECT_DIR, apply_dbt_env, build_args, partition_vars
from dataeng_assets.lib.extract import SOURCE_TABLES, Source, extract_table
from dataeng_assets.lib.lake import Lake
from dataeng_assets.lib.warehouse import Warehouse
from dataeng_assets.defs.warehouse.activity import DAILY_COLUMNS, EVENT_COLUMNS
first, last = date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2])
wh = Warehouse(env.warehouse_database())
with wh.session() as s:
    for t in SOURCE_TABLES.values():
        extract_table(s, Source(env.source_database()), t)
apply_dbt_env()
dbt = [os.path.join(os.path.dirname(sys.executable), "dbt")]
common = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
subprocess.run(dbt + build_args("build") + common + ["--exclude", "tag:daily_partitioned", "tag:activity"], check=True, capture_output=True)
subprocess.run(dbt + build_args("build", partition_vars(first, last + timedelta(days=1))) + common + ["--select", "tag:daily_partitioned"], check=True, capture_output=True)
days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
events = Lake(env.lake_location()).handle(["lake", "events", "raw_events"], days)
with wh.session() as s, s.transaction():
    s.stage_arrow("__events", events.dataset().scanner(columns=EVENT_COLUMNS).to_reader())
    s.replace_rows_from_query("analytics", "fact_user_events", sql.load("fact_user_events"), None,
                              "date >= $1 AND date < $2", [first, last + timedelta(days=1)])
    s.ensure_table("analytics", "user_daily_metrics", DAILY_COLUMNS)
    s.rowcount(sql.load("user_activity_daily"), [first, last + timedelta(days=1)])
subprocess.run(dbt + build_args("build") + common + ["--select", "tag:activity"], check=True, capture_output=True)
"""

QUERY = """
import json, sys, time, statistics
from dataeng_assets.lib import env
from dataeng_assets.lib.warehouse import Warehouse
queries = json.loads(sys.argv[1])
out = {}
with Warehouse(env.warehouse_database()).session() as s:
    for name, q in queries.items():
        times = []
        for _ in range(20):
            t = time.perf_counter(); s.execute(q); times.append(time.perf_counter() - t)
        times.sort()
        out[name] = {"p50_ms": round(statistics.median(times) * 1000, 2), "p95_ms": round(times[18] * 1000, 2)}
    out["fact_sales_rows"] = s.fetchone("SELECT count(*) FROM analytics.fact_sales")[0]
    out["fact_user_events_rows"] = s.fetchone("SELECT count(*) FROM analytics.fact_user_events")[0]
print(json.dumps(out))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--events-per-day", type=int, default=1_000_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--keep")
    a = p.parse_args()
    first = (END - timedelta(days=a.days - 1)).isoformat()
    last = END.isoformat()
    base = Path(a.keep or tempfile.mkdtemp(prefix="bench-wh-"))
    shutil.rmtree(base / "world", ignore_errors=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DATAENG_") and k != "DAGSTER_HOME"}
    try:
        env = {**clean, "DATAENG_HOME": str(base / "world")}
        gen_s = sh([str(BIN / "dataeng"), "generate", "--days", str(a.days), "--end-date", last, "--users",
                    str(a.customers), "--events-per-day", str(a.events_per_day), "--quiet"], env, "generate")
        lake_s = sh([sys.executable, "-c", DAGSTER_JOB, "user_analytics_job", first, last], env, "user analytics")
        figures = {}
        for variant in ("dagster", "bare"):
            home = base / variant
            shutil.rmtree(home, ignore_errors=True)
            shutil.copytree(base / "world", home)
            venv = {**clean, "DATAENG_HOME": str(home)}
            if variant == "dagster":
                secs = sh([sys.executable, "-c", DAGSTER_JOB, "warehouse_job", first, last], venv, "warehouse_job")
                secs += sh([sys.executable, "-c", DAGSTER_JOB, "user_activity_job", first, last], venv, "user_activity_job")
            else:
                secs = sh([sys.executable, "-c", BARE, first, last], venv, "bare build")
            out = subprocess.run([sys.executable, "-c", QUERY, json.dumps(QUERIES)], env=venv, capture_output=True, text=True)
            figures[variant] = {"build_s": round(secs, 2), **json.loads(out.stdout.strip().splitlines()[-1])}
        validate_s = sh([str(BIN / "dagster"), "definitions", "validate", "-m", "dataeng_assets.definitions"],
                        {**clean, "DATAENG_HOME": str(base / "dagster")}, "definitions validate")
        d, b = figures["dagster"], figures["bare"]
        print(f"{a.days} days x {a.events_per_day:,} events, {a.customers:,} customers; generated in {gen_s:.0f}s, "
              f"user-analytics job {lake_s:.1f}s")
        print(f"{'variant':<10} {'build s':>8} {'fact_sales':>11} {'events':>12} {'q1 p95 ms':>10} {'q2 p95 ms':>10}")
        for name, f in figures.items():
            print(f"{name:<10} {f['build_s']:>8.1f} {f['fact_sales_rows']:>11,} {f['fact_user_events_rows']:>12,} "
                  f"{f['sales_by_month_segment']['p95_ms']:>10} {f['customer_ltv_top_100']['p95_ms']:>10}")
        print(json.dumps({
            "days": a.days, "events_per_day": a.events_per_day, "customers": a.customers,
            "dagster_warehouse_s": d["build_s"], "bare_s": b["build_s"], "ratio_vs_bare": round(d["build_s"] / b["build_s"], 3),
            "user_analytics_s": round(lake_s, 2),
            "sales_by_month_segment_p95_ms": d["sales_by_month_segment"]["p95_ms"],
            "customer_ltv_top_100_p95_ms": d["customer_ltv_top_100"]["p95_ms"],
            "fact_sales_rows": d["fact_sales_rows"], "fact_user_events_rows": d["fact_user_events_rows"],
            "definitions_validate_s": round(validate_s, 2),
        }))
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
