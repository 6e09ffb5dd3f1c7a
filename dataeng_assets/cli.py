"""The `dataeng` command: generate the synthetic world, run the demo. `dataeng SUBCOMMAND --help`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

from dataeng_assets.lib import env
from dataeng_assets.lib.generate import DEMO_END_DATE, WorldSpec

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _world_args(p: argparse.ArgumentParser, events_default: int) -> None:
    p.add_argument("--days", type=int, default=7, help="number of daily drops (default 7)")
    p.add_argument(
        "--end-date", type=date.fromisoformat, default=DEMO_END_DATE,
        help=f"last day, YYYY-MM-DD (default {DEMO_END_DATE}, the seed's run date)",
    )
    p.add_argument("--users", type=int, default=2_000, help="customers = clickstream users (default 2000)")
    p.add_argument("--events-per-day", type=int, default=events_default, help=f"events per day (default {events_default})")
    p.add_argument("--seed", type=int, default=42, help="random seed; same flags give the same world (default 42)")
    p.add_argument("--defects", action="store_true", help="plant realistic defects so the gates have something to stop")


def _spec(a: argparse.Namespace) -> WorldSpec:
    return WorldSpec(days=a.days, end_date=a.end_date, users=a.users, events_per_day=a.events_per_day, seed=a.seed, defects=a.defects)


def cmd_generate(a: argparse.Namespace) -> int:
    from dataeng_assets.lib.generate import generate

    summary = generate(_spec(a), env.landing_location(), env.source_database(), progress=not a.quiet)
    total = sum(d["lines"] for d in summary["days"])
    print(f"landing: {env.landing_location().describe()}  ({len(summary['days'])} days, {total:,} lines)")
    print(f"source:  {env.source_database().describe()}  {summary['source']}")
    if a.defects:
        planted: dict[str, int] = {}
        for d in summary["days"]:
            for k, v in d["defects"].items():
                planted[k] = planted.get(k, 0) + v
        print(f"defects planted: {planted}")
    return 0


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME inside the data home (unless set), with the project's instance config."""
    home = Path(os.environ.get("DAGSTER_HOME") or env.dagster_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    config = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if config.exists() and not (home / "dagster.yaml").exists():
        shutil.copyfile(config, home / "dagster.yaml")
    return home


def run_job(job_name: str, first: str | None, last: str | None, instance=None, log_level: str = "WARNING"):
    """Materialize the job's assets for days first..last in one in-process, single-run backfill
    (an unpartitioned job, as the stream's micro-batch, when first is None)."""
    import dagster as dg

    from dataeng_assets.definitions import defs

    instance = instance or dg.DagsterInstance.get()
    job = defs().resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance,
        tags={RANGE_START_TAG: first, RANGE_END_TAG: last} if first else None,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
    )


def _summary_row(label: str) -> dict:
    return {"asset": label, "partitions": 0, "rows": None, "passed": 0, "failed": 0, "seconds": 0.0}


def run_summary(result, instance, expected: list[str] | None = None) -> tuple[list[dict], bool]:
    """One row per asset: partitions, rows, checks passed/failed, step time; and whether all gates passed."""
    rows: dict[str, dict] = {}
    step_of: dict[str, str] = {}
    for ev in result.get_asset_materialization_events():
        key = ev.asset_key.to_user_string()
        md = ev.materialization.metadata
        row = rows.setdefault(key, _summary_row(key))
        row["partitions"] += 1
        count = md.get("row_count") or md.get("dagster/row_count")
        if row["partitions"] == 1 and count is not None:
            row["rows"] = int(count.value)
        step_of[key] = ev.step_key
    gates_ok = True
    for ev in result.get_asset_check_evaluations():
        key = ev.asset_key.to_user_string()
        row = rows.setdefault(key, _summary_row(key))
        row["passed" if ev.passed else "failed"] += 1
        if not ev.passed and ev.severity.value == "ERROR":
            gates_ok = False
    stats = {s.step_key: s for s in instance.get_run_step_stats(result.run_id)}
    for key, step in step_of.items():
        s = stats.get(step)
        if s and s.end_time and s.start_time:
            rows[key]["seconds"] = round(s.end_time - s.start_time, 2)
    # Assets a gate stopped never materialized: list them too, so nobody wonders where they went.
    for key in expected or []:
        rows.setdefault(key, _summary_row(key + " (not run)"))
    return list(rows.values()), gates_ok and result.success


def table_lines(head: list[str], body: list[list]) -> list[str]:
    """A plain text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return [line(head), "  ".join("-" * w for w in widths), *(line(b) for b in body)]


def print_table(rows: list[dict], out=sys.stdout) -> None:
    head = ["asset", "partitions", "rows", "checks passed", "checks failed", "time (s)"]
    body = [[r["asset"], r["partitions"], f"{r['rows']:,}" if r["rows"] is not None else "–", r["passed"], r["failed"], f"{r['seconds']:.2f}"] for r in rows]
    print("\n".join(table_lines(head, body)), file=out)


def cmd_demo(a: argparse.Namespace) -> int:
    import dagster as dg

    from dataeng_assets.defs.analytics.assets import GROUP
    from dataeng_assets.lib.generate import generate
    from dataeng_assets.lib.warehouse import Warehouse

    spec = _spec(a)
    # Fail before doing any work when a URL is malformed or the warehouse is unreachable.
    Warehouse(env.warehouse_database()).check()
    env.lake_location()
    started = time.monotonic()
    print(f"data home: {env.data_home()}")
    print(f"generating {spec.days} days x {spec.events_per_day:,} events, {spec.users:,} users"
          f"{' with defects' if spec.defects else ''} ...")
    generate(spec, env.landing_location(), env.source_database(), progress=not a.quiet)
    home = ensure_dagster_home()
    first, last = spec.dates[0].isoformat(), spec.dates[-1].isoformat()
    jobs = {"user_analytics_job": [GROUP], "warehouse_job": ["extract", "warehouse", "marts"],
            "user_activity_job": ["user_activity"], "stream_job": ["streaming"]}
    daily = [j for j in jobs if j != "stream_job"]
    print(f"materializing {', '.join(daily)} for {first}..{last}, one run each, then a stream_job micro-batch "
          f"(DAGSTER_HOME={home}) ...")
    from dataeng_assets.definitions import defs
    from dataeng_assets.defs.automation.optimizer import refresh_optimizer

    graph = defs().resolve_asset_graph()
    rows, ok, results = [], True, []
    with dg.DagsterInstance.get() as instance:
        for job, groups in jobs.items():
            days = (None, None) if job == "stream_job" else (first, last)  # the stream: a micro-batch
            result = run_job(job, *days, instance, "DEBUG" if a.verbose else "WARNING")
            expected = sorted(k.to_user_string() for k in dg.AssetSelection.groups(*groups).resolve(graph))
            job_rows, job_ok = run_summary(result, instance, expected)
            rows += job_rows
            ok = ok and job_ok
            results.append(result)
            report = refresh_optimizer(instance, result.run_id)  # what the sensor does after daemon runs
        print()
        print_table(rows)
        print()
        failed = [ev for result in results for ev in result.get_asset_check_evaluations() if not ev.passed]
        for ev in failed:
            print(check_line(ev))
        if any(ev.severity.value == "ERROR" for ev in failed):
            print("downstream assets of a failed gate were not materialized in this run")
        print()
        print(refresh_quality(instance, graph))
        if report is not None:
            advice = [r for r in report["recommendations"] if r["severity"] != "info"]
            head = advice[0]["title"] if advice else f"no warnings ({len(report['recommendations'])} notes)"
            print(f"optimizer: {head}  (full report: dataeng optimize)")
        print(f"{len(results)} runs: {'success' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
        print("open it in the UI: make dev  (then http://127.0.0.1:3000)")
    return 0 if ok else 1


def refresh_quality(instance, graph) -> str:
    """What the sensors do after daemon runs: the quality report, then the alerts; a summary."""
    import dagster as dg

    from dataeng_assets.defs.automation.alerts import evaluate_alerts
    from dataeng_assets.defs.platform.assets import QUALITY_REPORT, quality_report_metadata
    from dataeng_assets.lib.quality import report as quality
    from dataeng_assets.lib.quality.alerts import alerts_dir, load_config
    from dataeng_assets.lib.warehouse import Warehouse

    built, md = quality_report_metadata(instance, graph.get_all_asset_keys(), Warehouse(env.warehouse_database()))
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=QUALITY_REPORT, metadata=md))
    cursor_file = alerts_dir() / "demo_cursor.json"  # the daemon's sensor keeps its own cursor
    cursor = json.loads(cursor_file.read_text()) if cursor_file.exists() else {}
    alerts, delivery, cursor = evaluate_alerts(instance, graph, cursor, load_config())
    cursor_file.parent.mkdir(parents=True, exist_ok=True)
    cursor_file.write_text(json.dumps(cursor))
    lines = [quality.markdown({**built, "trend": built["trend"][-3:], "freshness": []}),
             f"quality report: {quality.report_dir() / 'quality_report.md'}"]
    by_sev = {s: sum(a.severity == s for a in alerts) for s in ("critical", "warning", "info")}
    lines.append(f"alerts: {len(alerts)} new ({by_sev['critical']} critical, {by_sev['warning']} warning, "
                 f"{by_sev['info']} info), {len(delivery.sent)} delivered -> {alerts_dir() / 'alerts.jsonl'}")
    lines += [f"alert delivery to {sink} failed: {err}" for _, sink, err in delivery.failed]
    return "\n".join(lines)


def check_line(ev) -> str:
    """One line per failed check: what was seen against what was allowed, and where."""
    label = "GATE FAILED" if ev.severity.value == "ERROR" else "WARNING"
    md = {k: v.value for k, v in ev.metadata.items()}
    where = f"; partitions {md['partitions']}" if md.get("partitions", "unpartitioned") != "unpartitioned" else ""
    return (f"{label}: {ev.asset_key.to_user_string()} / {ev.check_name}: observed {md.get('observed')} "
            f"(threshold {md.get('threshold')}){where}")


def cmd_dev(a: argparse.Namespace) -> int:
    """Webserver + daemon on the data home's instance (replaces this process)."""
    home = ensure_dagster_home()
    print(f"DAGSTER_HOME={home}  data home={env.data_home()}")
    argv = ["dagster", "dev", "-m", "dataeng_assets.definitions", "-h", a.host, "-p", str(a.port)]
    exe = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
    os.execv(exe, argv)
    return 0  # not reached


def cmd_optimize(a: argparse.Namespace) -> int:
    from dataeng_assets.lib.optimizer.report import compare, render

    if a.compare:
        try:
            before, after = (json.loads(Path(p).read_text()) for p in a.compare)
        except (OSError, ValueError) as e:
            print(f"cannot read the reports to compare: {e}", file=sys.stderr)
            return 2
        print(compare(before, after))
        return 0
    import dagster as dg

    from dataeng_assets.definitions import defs
    from dataeng_assets.lib.optimizer.collect import collect_recent
    from dataeng_assets.lib.optimizer.report import build

    ensure_dagster_home()
    since = None
    if a.since:
        since = datetime.combine(a.since, datetime.min.time(), tzinfo=timezone.utc).timestamp()
    with dg.DagsterInstance.get() as instance:
        runs = collect_recent(instance, limit=a.runs, since=since, asset_graph=defs().resolve_asset_graph())
    text = render(build(runs), a.output_format)
    if a.output:
        Path(a.output).write_text(text, encoding="utf-8")
        print(f"wrote {a.output} ({len(runs)} runs analyzed)")
    else:
        print(text)
    return 0


def cmd_validate(a: argparse.Namespace) -> int:
    """The seed's validator: exit 1 with --fail-on-error when a critical check fails, 2 on bad input."""
    from dataeng_assets.lib.quality.rules import RulesError
    from dataeng_assets.lib.quality.validate import InputError, text_report, validate
    from dataeng_assets.lib.warehouse import Warehouse

    try:
        warehouse = Warehouse(env.warehouse_database()) if a.data.startswith("warehouse://") else None
        report = validate(a.data, a.rules, a.table, a.partition, warehouse)
    except (RulesError, InputError) as e:
        print(f"validate: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, default=str) if a.output_format == "json" else text_report(report))
    return 1 if a.fail_on_error and report["critical_failed"] else 0


def cmd_pipeline(a: argparse.Namespace) -> int:
    """validate | list | run: the seed's pipeline_orchestrator.py, on declarative pipeline files."""
    from dataeng_assets.defs.pipelines import load_pipelines, pipelines_dir
    from dataeng_assets.lib.pipelines.spec import PipelineError, load_file
    from dataeng_assets.lib.quality.rules import RulesError

    if a.action == "list":
        loaded = load_pipelines()
        print(f"pipelines in {pipelines_dir()}:")
        for built in loaded.pipelines:
            p = built.pipeline
            print(f"  {p.name:<28} {len(p.tasks)} tasks  schedule {p.schedule or '-':<12} {p.path.name}")
        for path, message in loaded.errors:
            print(f"  BROKEN {path.name}: {message}")
        return 1 if loaded.errors else 0
    if not a.file:
        print(f"dataeng pipeline {a.action}: give the pipeline file", file=sys.stderr)
        return 2
    try:
        from dataeng_assets.lib.pipelines.build import build

        pipeline = load_file(a.file)
        if a.action == "validate":
            built = build(pipeline)
            print(f"{a.file}: pipeline {pipeline.name} is valid: {len(pipeline.tasks)} tasks, "
                  f"{len(built.assets)} assets, {sum(len(c.check_keys) for c in built.checks)} checks, "
                  f"schedule {pipeline.schedule or 'none'}")
            return 0
        return _run_pipeline(a, pipeline)
    except (PipelineError, RulesError) as e:
        print(f"pipeline error: {e}", file=sys.stderr)
        return 2


def _run_pipeline(a: argparse.Namespace, pipeline) -> int:
    import dagster as dg

    from dataeng_assets.lib.pipelines import runner

    ensure_dagster_home()
    pipeline = runner.with_overrides(pipeline, a.max_retries, a.timeout)
    print(f"pipeline {pipeline.name}: {len(pipeline.tasks)} tasks{' (full refresh)' if a.full_refresh else ''}")
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result, built = runner.run(pipeline, instance, a.full_refresh)
        rows = runner.summary(result, built, instance)
    print()
    body = [[r["task"], r["status"], r["attempts"], "–" if r["seconds"] is None else f"{r['seconds']:.2f}",
             "–" if r["rows"] is None else f"{r['rows']:,}"] for r in rows]
    print("\n".join(table_lines(["task", "status", "attempts", "time (s)", "rows"], body)))
    ok = result.success
    print(f"\npipeline {pipeline.name}: {'success' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s "
          f"(run {result.run_id})")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dataeng", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write the synthetic world (OLTP source + daily drops) into the data home",
                       description="Write a seeded, deterministic e-commerce world: the OLTP source database "
                       "(DATAENG_SOURCE_URL) and daily clickstream drops (DATAENG_LANDING_URL).")
    _world_args(g, events_default=20_000)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_generate)
    d = sub.add_parser("demo", help="generate a small world and materialize every asset for it, then print a summary",
                       description="Generate a small world into the data home, materialize every asset for its "
                       "days in one backfill-style run, run the checks and print a summary. Exits 1 when a gate fails.")
    _world_args(d, events_default=20_000)
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--verbose", action="store_true", help="show Dagster's event log on the console")
    d.set_defaults(func=cmd_demo)
    o = sub.add_parser("optimize", help="advice from the instance's run-step stats (the seed's performance optimizer)",
                       description="Analyze the last finished runs of the instance in the data home: slowest "
                       "steps, serial independent steps, batching, scaling, regressions, retries, memory, scans, "
                       "lake files. Or compare two JSON reports (--compare BEFORE.json AFTER.json).")
    o.add_argument("--runs", type=int, default=20, help="how many finished runs to analyze (default 20)")
    o.add_argument("--since", type=date.fromisoformat, help="only runs started on or after this day, YYYY-MM-DD")
    o.add_argument("--output-format", choices=["markdown", "json", "html"], default="markdown")
    o.add_argument("--output", help="write to this file instead of standard output")
    o.add_argument("--compare", nargs=2, metavar=("BEFORE.json", "AFTER.json"),
                   help="print the before/after comparison of two JSON reports")
    o.set_defaults(func=cmd_optimize)
    q = sub.add_parser("validate", help="check a Parquet/CSV file or warehouse table against a rules file",
                       description="The seed's data quality validator: DATA is a Parquet or CSV path or "
                       "warehouse://schema.table; RULES is a quality_rules.yaml. Exit 1 with --fail-on-error when a "
                       "critical check fails; exit 2 for unreadable input or a bad rules file.")
    q.add_argument("data", metavar="DATA")
    q.add_argument("rules", metavar="RULES.yaml")
    q.add_argument("--table", help="which table of the rules file DATA is (default: matched by name)")
    q.add_argument("--partition", help="for warehouse:// data: only this day (YYYY-MM-DD) of its partition column")
    q.add_argument("--fail-on-error", action="store_true", help="exit 1 when a critical check fails")
    q.add_argument("--output-format", choices=["text", "json"], default="text")
    q.set_defaults(func=cmd_validate)
    pl = sub.add_parser("pipeline", help="declarative pipelines: validate, list, run a pipeline YAML",
                        description="The seed's pipeline orchestrator: `validate FILE` checks a pipeline file, "
                        "`list` shows the pipelines folder (DATAENG_PIPELINES_DIR), `run FILE` runs every task "
                        "once in process with progress and a summary (exit 1 on failure, 2 on a bad file).")
    pl.add_argument("action", choices=["validate", "list", "run"])
    pl.add_argument("file", nargs="?", help="the pipeline YAML (validate, run)")
    pl.add_argument("--max-retries", type=int, help="override every task's max_retries")
    pl.add_argument("--timeout", type=float, help="override every task's timeout_s (seconds)")
    pl.add_argument("--full-refresh", action="store_true", help="extract tasks ignore their watermark")
    pl.set_defaults(func=cmd_pipeline)
    v = sub.add_parser("dev", help="start the Dagster webserver and daemon on the data home",
                       description="Run `dagster dev` with DAGSTER_HOME inside the data home, so the UI shows "
                       "the demo's runs, schedules, sensors and backfills.")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=3000)
    v.set_defaults(func=cmd_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except env.ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        from dataeng_assets.lib.warehouse import WarehouseError

        if isinstance(e, WarehouseError):
            print(f"warehouse error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
