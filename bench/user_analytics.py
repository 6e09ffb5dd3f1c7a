"""Benchmark: one day of N events through the user-analytics pipeline.

(a) Dagster: the job's partition materialized in process (raw → lake → metrics → gate →
    warehouse), through the real IO managers and the blocking gate;
(b) bare DuckDB: the same SQL as one script (COPY to Parquet, checks as SQL, insert into the
    warehouse file), no orchestration;
(c) the seed's pandas approach (read JSON lines, groupby, to_parquet, asserts, load) on at most
    1M events (above that it runs on its own 1M-event day; compared by events per second).

Each variant runs in its own subprocess, so its wall time and peak RSS (ru_maxrss of that
process) are its own. Prints a table; the last line is one JSON object.

    python bench/user_analytics.py [--events 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

import common  # bench/common.py: run as a script, its folder is on sys.path

DAY = date(2024, 1, 20)
PANDAS_MAX_EVENTS = 1_000_000  # the seed's approach needs ~2.5 GB per 1M events: 10M would not fit


def variant_generate(home: Path) -> dict:
    from dataeng_assets.lib import env
    from dataeng_assets.lib.generate import WorldSpec, generate

    events = int(os.environ["BENCH_EVENTS"])
    users = max(2_000, events // 20)
    generate(WorldSpec(days=1, end_date=DAY, users=users, events_per_day=events), env.landing_location(), env.source_database(), progress=False)
    return {}


def variant_dagster(home: Path) -> dict:
    import dagster as dg

    from dataeng_assets.cli import run_job

    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job("user_analytics_job", DAY.isoformat(), DAY.isoformat(), instance)
    assert result.success, "dagster run failed"
    rows = {e.asset_key.to_user_string(): e.materialization.metadata["row_count"].value for e in result.get_asset_materialization_events()}
    return {"rows": rows}


def variant_bare(home: Path) -> dict:
    import duckdb

    from dataeng_assets.lib import sql
    from dataeng_assets.lib.events import parse_drops, scratch_duckdb

    files = sorted(str(p) for p in (home / "landing" / "events" / f"date={DAY}").glob("*.jsonl"))
    out = home / "bare"
    out.mkdir()
    with scratch_duckdb() as con:
        parse_drops(con, files)
        con.sql(sql.load("raw_events")).write_parquet(str(out / "raw_events.parquet"), compression="zstd")
        con.sql(sql.load("raw_events_quarantine")).write_parquet(str(out / "quarantine.parquet"), compression="zstd")
        con.read_parquet(str(out / "raw_events.parquet")).create_view("raw_events")
        con.sql(sql.load("user_metrics")).write_parquet(str(out / "user_metrics.parquet"), compression="zstd")
        bad = con.execute(
            "SELECT count(*) FILTER (WHERE user_id IS NULL) + count(*) FILTER (WHERE event_count < 0), count(*) "
            "FROM read_parquet($1)", [str(out / "user_metrics.parquet")]
        ).fetchone()
        assert bad[0] == 0 and bad[1] > 0
    wh = duckdb.connect(str(home / "bare.duckdb"))
    wh.execute("CREATE SCHEMA analytics")
    wh.execute("CREATE TABLE analytics.user_daily_metrics AS SELECT * FROM read_parquet($1)", [str(out / "user_metrics.parquet")])
    n = wh.execute("SELECT count(*) FROM analytics.user_daily_metrics").fetchone()[0]
    wh.close()
    return {"rows": {"analytics/user_daily_metrics": n}}


def variant_pandas(home: Path) -> dict:
    import duckdb
    import pandas as pd

    files = sorted((home / "landing" / "events" / f"date={DAY}").glob("*.jsonl"))
    df = pd.concat(pd.read_json(f, lines=True) for f in files)  # the seed's read of a day
    df["date"] = pd.to_datetime(df["event_timestamp"]).dt.date
    metrics = df.groupby(["user_id", "date"]).agg(
        event_count=("event_type", "count"),
        total_items=("properties", lambda x: x.apply(lambda y: len(y.get("items", [])) if y else 0).sum()),
    ).reset_index()
    out = home / "pandas_metrics.parquet"
    metrics.to_parquet(out, engine="pyarrow", compression="snappy")
    check = pd.read_parquet(out)
    assert len(check) > 0 and check["event_count"].min() >= 0 and check["user_id"].notna().all()
    wh = duckdb.connect(str(home / "pandas.duckdb"))
    wh.execute("CREATE SCHEMA analytics")
    wh.register("metrics", check)
    wh.execute("CREATE TABLE analytics.user_daily_metrics AS SELECT * FROM metrics")
    wh.close()
    return {"rows": {"analytics/user_daily_metrics": len(check)}}


VARIANTS = {"dagster": variant_dagster, "bare_duckdb": variant_bare, "pandas": variant_pandas}
STEPS = {**VARIANTS, "generate": variant_generate}


def run_variant(name: str, home: Path) -> tuple[float, float, dict]:
    return common.run_variant(__file__, name, home)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--keep", help="use and keep this folder instead of a temp one")
    p.add_argument("--variant", choices=list(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.variant:
        os.environ["DATAENG_HOME"] = a.home
        result = STEPS[a.variant](Path(a.home))
        print(json.dumps(result))
        return

    base = Path(a.keep or tempfile.mkdtemp(prefix="bench-ua-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        gen_home = base / "world"
        os.environ["BENCH_EVENTS"] = str(a.events)
        gen_s = run_variant("generate", gen_home)[0]
        figures: dict[str, tuple[float, float, dict]] = {}
        for name in VARIANTS:
            home = base / name
            shutil.rmtree(home, ignore_errors=True)
            source = gen_home
            if name == "pandas" and a.events > PANDAS_MAX_EVENTS:
                # The seed's approach holds the whole day in memory (~2.5 GB per 1M events here):
                # at larger N it runs on its own 1M-event day and is compared by events per second.
                source = base / "world_pandas"
                os.environ["BENCH_EVENTS"] = str(PANDAS_MAX_EVENTS)
                run_variant("generate", source)
            shutil.copytree(source, home)  # same files, fresh lake and warehouse each
            figures[name] = run_variant(name, home)
        pandas_events = min(a.events, PANDAS_MAX_EVENTS)
        rows = figures["dagster"][2]["rows"]
        print(f"\n{a.events:,} events, 1 day (generated in {gen_s:.1f}s); rows: {rows}")
        print(f"{'variant':<12} {'events':>11} {'seconds':>9} {'events/s':>11} {'peak RSS MiB':>13}")
        for name, (sec, rss, _) in figures.items():
            n = pandas_events if name == "pandas" else a.events
            print(f"{name:<12} {n:>11,} {sec:>9.2f} {n / sec:>11,.0f} {rss:>13.0f}")
        dag_s, dag_rss, _ = figures["dagster"]
        bare_s = figures["bare_duckdb"][0]
        pandas_s = figures["pandas"][0]
        print(json.dumps({
            "events": a.events,
            "dagster_s": round(dag_s, 2),
            "bare_duckdb_s": round(bare_s, 2),
            "ratio_vs_bare_duckdb": round(dag_s / bare_s, 3),
            "pandas_s": round(pandas_s, 2),
            "pandas_events": pandas_events,
            # events per second, Dagster over pandas (equal to the time ratio when N is the same)
            "speedup_vs_pandas": round((a.events / dag_s) / (pandas_events / pandas_s), 1),
            "peak_rss_mib": round(dag_rss),
            "bare_duckdb_peak_rss_mib": round(figures["bare_duckdb"][1]),
            "pandas_peak_rss_mib": round(figures["pandas"][1]),
        }))
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
