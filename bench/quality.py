"""Benchmark: the quality gates on one day of N events, against the materialization they guard
and against the same Pandera models validated in memory with pandas.

(a) Dagster: user_analytics_job for the day, in process. Every asset step and every quality step
    (one `*_quality` step per op: Pandera gate, YAML rules, anomaly history) is timed from the
    run's step stats; the gates' share of the run is their time over the asset steps' time.
(b) pandas: the seed's way of validating: load the same lake partitions and warehouse rows into
    pandas and run the same Pandera models (`schema.validate(df, lazy=True)`).

Each variant runs in its own subprocess, so its wall time and peak RSS are its own. Prints a
table; the last line is one JSON object.

    python bench/quality.py [--events 10000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import common  # bench/common.py: run as a script, its folder is on sys.path

DAY = date(2024, 1, 20)


def variant_generate(home: Path) -> dict:
    from dataeng_assets.lib import env
    from dataeng_assets.lib.generate import WorldSpec, generate

    events = int(os.environ["BENCH_EVENTS"])
    generate(WorldSpec(days=1, end_date=DAY, users=max(2_000, events // 20), events_per_day=events),
             env.landing_location(), env.source_database(), progress=False)
    return {}


def variant_dagster(home: Path) -> dict:
    import dagster as dg

    from dataeng_assets.cli import run_job

    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job("user_analytics_job", DAY.isoformat(), DAY.isoformat(), instance)
        assert result.success, "dagster run failed"
        steps = {s.step_key: s.end_time - s.start_time for s in instance.get_run_step_stats(result.run_id)}
    evaluations = result.get_asset_check_evaluations()
    gates = {k: v for k, v in steps.items() if k.endswith("_quality")}
    assets = {k: v for k, v in steps.items() if k not in gates}
    return {
        "gates_s": sum(gates.values()), "assets_s": sum(assets.values()), "steps": steps,
        "checks": len(evaluations), "checks_failed": sum(not e.passed for e in evaluations),
    }


def variant_pandas(home: Path) -> dict:
    import pandas as pd

    from dataeng_assets.lib import env
    from dataeng_assets.lib.lake import Lake
    from dataeng_assets.lib.quality.pandera_rules import validate_frame
    from dataeng_assets.lib.quality.schemas import MODELS
    from dataeng_assets.lib.warehouse import Warehouse

    def untyped(schema):  # pandas dtypes from Arrow differ per type mapper; the checks are what we time
        return schema.update_columns({c: {"dtype": None} for c in schema.columns})

    ints = {t: pd.Int64Dtype() for t in ("int8", "int16", "int32", "int64")}
    lake = Lake(env.lake_location())
    started = time.perf_counter()
    failures = 0
    for table, key in (("lake.events.raw_events", ["lake", "events", "raw_events"]),
                       ("lake.analytics.user_metrics", ["lake", "analytics", "user_metrics"])):
        arrow = lake.handle(key, [DAY.isoformat()]).to_table()
        df = arrow.to_pandas(types_mapper=lambda t: ints.get(str(t)))
        failures += len(validate_frame(untyped(MODELS[table]), df))
        del df, arrow
    with Warehouse(env.warehouse_database()).session(read_only=True) as s:
        df = s.to_arrow("SELECT * FROM analytics.user_daily_metrics WHERE date = $1", [DAY]).to_pandas()
    failures += len(validate_frame(untyped(MODELS["analytics.user_daily_metrics"]), df))
    return {"validate_s": time.perf_counter() - started, "failures": failures}


VARIANTS = {"generate": variant_generate, "dagster": variant_dagster, "pandas": variant_pandas}


def run_variant(name: str, home: Path) -> tuple[float, float, dict]:
    return common.run_variant(__file__, name, home)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--keep", help="use and keep this folder instead of a temp one")
    p.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.variant:
        os.environ["DATAENG_HOME"] = a.home
        print(json.dumps(VARIANTS[a.variant](Path(a.home)), default=str))
        return
    home = Path(a.keep or tempfile.mkdtemp(prefix="bench-quality-"))
    home.mkdir(parents=True, exist_ok=True)
    try:
        os.environ["BENCH_EVENTS"] = str(a.events)
        if not (a.keep and (home / "landing").exists()):  # a kept folder is reused as it is
            run_variant("generate", home)
        dag_s, dag_rss, dag = run_variant("dagster", home)
        pd_s, pd_rss, pdv = run_variant("pandas", home)
        share = dag["gates_s"] / dag["assets_s"]
        print(f"\n{a.events:,} events, 1 day: {dag['checks']} checks ({dag['checks_failed']} failed)")
        for step, sec in sorted(dag["steps"].items(), key=lambda kv: -kv[1]):
            print(f"  {step:<55} {sec:8.2f} s")
        print(f"gates {dag['gates_s']:.2f} s vs asset steps {dag['assets_s']:.2f} s = {share:.1%} "
              f"(run wall {dag_s:.1f} s, peak RSS {dag_rss:.0f} MiB)")
        print(f"pandas + Pandera in memory: {pdv['validate_s']:.2f} s (process {pd_s:.1f} s, peak RSS {pd_rss:.0f} MiB)")
        print(json.dumps({
            "events": a.events,
            "gates_s": round(dag["gates_s"], 2),
            "materialization_s": round(dag["assets_s"], 2),
            "gates_share": round(share, 3),
            "checks": dag["checks"],
            "pandas_validate_s": round(pdv["validate_s"], 2),
            "speedup_vs_pandas": round(pdv["validate_s"] / dag["gates_s"], 1),
            "peak_rss_mib": round(dag_rss),
            "pandas_peak_rss_mib": round(pd_rss),
        }))
    finally:
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
