"""`dataeng pipeline run`: one pipeline, once, in process, with a progress line per task event
and a summary. The same definitions the code location serves, so what runs here is what the
schedule runs."""

import logging
import time
from dataclasses import replace

import dagster as dg

from dataeng_assets.lib.pipelines.build import PipelineDefs, build
from dataeng_assets.lib.pipelines.spec import Pipeline

_SHOWN = {
    "STEP_START": "started",
    "STEP_SUCCESS": "done",
    "STEP_FAILURE": "FAILED",
    "STEP_UP_FOR_RETRY": "will retry",
    "STEP_RESTARTED": "retrying",
}


class ProgressHandler(logging.Handler):
    """Prints step events as they happen (Dagster attaches the event to each log record)."""

    def __init__(self, tasks: dict[str, str], out):
        super().__init__()
        self.tasks, self.out, self.started = tasks, out, time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        kind = event.event_type_value
        step = self.tasks.get(meta.get("step_key") or "", meta.get("step_key") or "")
        if kind in _SHOWN:
            detail = ""
            error = getattr(event.event_specific_data, "error", None)
            if kind in ("STEP_FAILURE", "STEP_UP_FOR_RETRY") and error is not None:
                detail = ": " + (error.message.strip().splitlines() or [""])[-1][:200]
            print(f"  [{time.monotonic() - self.started:7.1f}s] {step:<30} {_SHOWN[kind]}{detail}", file=self.out, flush=True)
        elif kind == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            state = "passed" if data.passed else f"FAILED ({data.severity.value})"
            print(f"  [{time.monotonic() - self.started:7.1f}s] {'check ' + data.check_name:<30} {state}",
                  file=self.out, flush=True)


def task_names(built: PipelineDefs) -> dict[str, str]:
    """Step key (op name) -> task name."""
    return {a.op.name: a.metadata_by_key[a.key]["task"] for a in built.assets}


def with_overrides(p: Pipeline, max_retries: int | None, timeout_s: float | None) -> Pipeline:
    tasks = [replace(t, max_retries=t.max_retries if max_retries is None else max_retries,
                     timeout_s=t.timeout_s if timeout_s is None else timeout_s) for t in p.tasks]
    return replace(p, tasks=tasks)


def run(p: Pipeline, instance: dg.DagsterInstance, full_refresh: bool = False, out=None):
    """Materialize every task of `p` once; returns (result, built definitions)."""
    import sys

    from dataeng_assets.defs.resources import build_resources

    out = out or sys.stdout
    built: PipelineDefs = build(p)
    handler = ProgressHandler({**task_names(built), **{c.node_def.name: "checks" for c in built.checks}}, out)

    @dg.logger
    def progress(_init_context):
        lg = logging.Logger("dataeng.pipeline", level=logging.DEBUG)
        lg.addHandler(handler)
        return lg

    defs = dg.Definitions(assets=built.assets, asset_checks=built.checks, jobs=[built.job],
                          resources=build_resources(), loggers={"progress": progress})
    job = defs.resolve_job_def(built.job.name)
    run_config: dict = {"loggers": {"progress": {}}}
    if full_refresh:
        run_config["ops"] = {a.op.name: {"config": {"full_refresh": True}} for a in built.assets}
    result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    return result, built


def summary(result, built: PipelineDefs, instance: dg.DagsterInstance) -> list[dict]:
    """One row per task: status, attempts, seconds, rows; validate tasks as their checks."""
    stats = {s.step_key: s for s in instance.get_run_step_stats(result.run_id)}
    rows_by_key = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    rows = []
    for a in built.assets:
        st = stats.get(a.op.name)
        md = rows_by_key.get(a.key, {})
        rows.append({
            "task": task_names(built)[a.op.name],
            "status": "not run" if st is None else st.status.value.lower(),
            "attempts": st.attempts if st else 0,
            "seconds": round(st.end_time - st.start_time, 2) if st and st.end_time and st.start_time else None,
            "rows": md["row_count"].value if "row_count" in md else None,
        })
    for ev in result.get_asset_check_evaluations():
        rows.append({"task": f"check {ev.check_name}", "status": "passed" if ev.passed else f"failed ({ev.severity.value})",
                     "attempts": 1, "seconds": None, "rows": None})
    return rows
