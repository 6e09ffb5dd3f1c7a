"""Benchmark: does applying the optimizer's top recommendation make the pipeline faster?

Scenario (a common bad configuration): a week of daily partitions materialized as one run per
day, each run on Dagster's default multiprocess executor, as a per-partition backfill or a
sensor requesting day by day would launch them. The optimizer sensor records each run; the
report's top recommendation is taken, the bench applies the documented change (launch the range
as one single-run backfill), reruns, and prints `dataeng optimize --compare` of the two.

    python bench/optimizer.py [--days 7] [--events-per-day 20000] [--keep DIR]

Each phase runs in its own process, so its peak RSS (with its step subprocesses) is its own.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
END = date(2024, 1, 20)
DATAENG = str(Path(sys.executable).with_name("dataeng"))


def bench_job():
    """The job, reconstructable by the multiprocess executor's step subprocesses."""
    from dataeng_assets.definitions import defs

    return defs().resolve_job_def("user_analytics_job")


def phase(name: str, days: list[str]) -> dict:
    import dagster as dg

    from dataeng_assets.defs.automation.optimizer import refresh_optimizer

    job = dg.reconstructable(bench_job)
    if name == "before":
        batches = [{"dagster/partition": d} for d in days]
    else:
        batches = [{"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}]
    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        for tags in batches:
            with dg.execute_job(job, instance=instance, tags=tags) as result:
                assert result.success, f"run {tags} failed"
                refresh_optimizer(instance, result.run_id)  # what the optimizer sensor does on RUN_SUCCESS
    wall = time.perf_counter() - started
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"wall_s": round(wall, 3), "runs": len(batches), "peak_rss_mib": round(peak / 1024)}


def run(cmd: list[str], env: dict) -> str:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--events-per-day", type=int, default=20_000)
    p.add_argument("--keep", help="use and keep this folder")
    p.add_argument("--phase", choices=["before", "after"], help=argparse.SUPPRESS)
    a = p.parse_args()
    days = [(END - timedelta(days=i)).isoformat() for i in range(a.days - 1, -1, -1)]
    if a.phase:
        print(json.dumps(phase(a.phase, days)))
        return

    base = Path(a.keep or tempfile.mkdtemp(prefix="bench-opt-"))
    home = base / "home"
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAENG_") and k != "DAGSTER_HOME"}
    env.update({"DATAENG_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")})
    (home / "dagster_home").mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    try:
        run([DATAENG, "generate", "--days", str(a.days), "--end-date", END.isoformat(),
             "--events-per-day", str(a.events_per_day), "--quiet"], env)
        before = json.loads(run([sys.executable, __file__, "--phase", "before", "--days", str(a.days)], env).splitlines()[-1])
        report_before = base / "before.json"
        run([DATAENG, "optimize", "--runs", str(a.days), "--output-format", "json", "--output", str(report_before)], env)
        top = json.loads(report_before.read_text())["recommendations"][0]
        print(f"top recommendation: [{top['severity']}] {top['title']}\n  action: {top['action']}\n"
              f"  estimated gain: {top['estimated_gain_s']}s\n  evidence: {json.dumps(top['evidence'])}")
        if top["rule"] != "batch_partitions":
            raise SystemExit(f"expected the batching advice first, got {top['rule']}: the bench applies only that change")
        # Apply it: the range as one run (the assets declare BackfillPolicy.single_run()).
        after = json.loads(run([sys.executable, __file__, "--phase", "after", "--days", str(a.days)], env).splitlines()[-1])
        report_after = base / "after.json"
        run([DATAENG, "optimize", "--runs", "1", "--output-format", "json", "--output", str(report_after)], env)
        print(run([DATAENG, "optimize", "--compare", str(report_before), str(report_after)], env))
        print(f"{'phase':<8} {'runs':>5} {'wall s':>8} {'peak RSS MiB':>13}")
        for name, f in (("before", before), ("after", after)):
            print(f"{name:<8} {f['runs']:>5} {f['wall_s']:>8.2f} {f['peak_rss_mib']:>13}")
        print(json.dumps({
            "scenario": f"{a.days} daily partitions x {a.events_per_day} events, one multiprocess run per day",
            "top_recommendation": top["rule"],
            "estimated_gain_s": top["estimated_gain_s"],
            "before_s": before["wall_s"], "after_s": after["wall_s"],
            "measured_gain_s": round(before["wall_s"] - after["wall_s"], 3),
            "speedup": round(before["wall_s"] / after["wall_s"], 2),
            "before_peak_rss_mib": before["peak_rss_mib"], "after_peak_rss_mib": after["peak_rss_mib"],
        }))
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
