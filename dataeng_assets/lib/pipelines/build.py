"""A parsed pipeline becomes Dagster definitions: one asset per extract/transform/load task,
validate tasks as blocking checks through the quality framework, one job and one schedule.

- extract: the watermark mechanism of the warehouse extraction (`lib/extract.py`), into the
  warehouse table `<pipeline>.<task>`; incremental on `incremental_field`, full refresh on demand.
- transform: a SQL file (upstream tasks referenced as `{{ task_name }}`) or a Python function
  `package.module:function(context, session, inputs)` returning SQL or Arrow; the result replaces
  `<pipeline>.<task>` atomically.
- load: the upstream task's table into the target table, atomically: replace, append, or upsert
  by keys (idempotent on rerun; duplicate keys in the input are refused).
Each task gets a RetryPolicy with the configured backoff and jitter, and a time limit.
"""


import importlib
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa

from dataeng_assets.lib import env
from dataeng_assets.lib.pipelines.spec import Pipeline, PipelineError, Task, resolve_env, scheme_of, split_url
from dataeng_assets.lib.quality.checks import build_quality_checks
from dataeng_assets.lib.quality.rules import load_rules_file
from dataeng_assets.lib.resources import WarehouseResource
from dataeng_assets.lib.warehouse import Session, Warehouse, ident, qualified

_BACKOFF = {"exponential": dg.Backoff.EXPONENTIAL, "linear": dg.Backoff.LINEAR, "constant": None}
_REF = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")


class PipelineConfig(dg.Config):
    full_refresh: bool = False  # extract tasks ignore their watermark and reload the whole table


class TaskTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float, task: str) -> Iterator[None]:
    """Fail the task after `seconds`. An alarm signal, so only on the main thread (where Dagster
    runs a step); a database call in progress is interrupted when it returns to Python."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise TaskTimeout(f"task {task} exceeded its timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class PipelineDefs:
    pipeline: Pipeline
    assets: list[dg.AssetsDefinition]
    checks: list[dg.AssetChecksDefinition]
    job: object  # what define_asset_job returns (resolved by Definitions)
    schedule: dg.ScheduleDefinition | None


def target_of(task: Task) -> tuple[str, str, str]:
    """(database URL, schema, table) of a load task, resolved from the environment now."""
    db, table = split_url(resolve_env(str(task.params["target"])))
    schema, name = table.split(".")
    return db, schema, name


def asset_key(p: Pipeline, task: Task) -> dg.AssetKey:
    if task.type == "load":
        raw = str(task.params["target"])
        schema, table = raw.rsplit("/", 1)[1].split(".")  # the key is fixed even if the URL's env changes
        return dg.AssetKey([schema, table])
    return dg.AssetKey([p.name, task.name])


def table_of(p: Pipeline, name: str) -> str:
    task = p.task(name)
    if task.type == "load":
        _, schema, table = target_of(task)
        return qualified(schema, table)
    return qualified(p.name, name)


def _retry(task: Task) -> dg.RetryPolicy | None:
    if task.max_retries == 0:
        return None
    return dg.RetryPolicy(max_retries=task.max_retries, delay=task.retry_delay_s, backoff=_BACKOFF[task.backoff],
                          jitter=dg.Jitter.PLUS_MINUS)


def _kinds(task: Task, engine: str | None) -> set[str]:
    kinds = {engine or "warehouse"}
    if task.type == "extract":
        kinds.add({"postgresql": "postgres"}.get(scheme_of(resolve_env(str(task.params["source"]))), "sqlite"))
    if task.type == "transform":
        kinds.add("sql" if "sql" in task.params else "python")
    return kinds


def build(p: Pipeline) -> PipelineDefs:
    try:
        engine = env.warehouse_database().kind
    except env.ConfigError:
        engine = None
    validated: dict[str, list[dg.AssetKey]] = {}
    rules = {}
    for t in p.tasks:
        if t.type == "validate":
            tables = load_rules_file(p.resolve_path(str(t.params["rules"])))
            for tr in tables:
                if not t.params.get("fail_on_error", True):
                    tr.rules = [_demote(r) for r in tr.rules]
                rules[tr.table] = tr
            validated[t.name] = [dg.AssetKey(tr.key_path) for tr in tables]
    for t in p.tasks:  # SQL that names an unknown task fails here, when the file loads
        if t.type == "transform" and "sql" in t.params:
            for name in _REF.findall(p.resolve_path(str(t.params["sql"])).read_text(encoding="utf-8")):
                if name not in {x.name for x in p.tasks}:
                    raise PipelineError(f"{p.path}:{t.line}: task {t.name}: {t.params['sql']} refers to unknown "
                                        f"task {name!r}")
    assets = []
    for t in p.tasks:
        if t.type == "validate":
            continue
        deps = []
        for d in t.depends_on:
            dep = p.task(d)
            deps += validated[d] if dep.type == "validate" else [asset_key(p, dep)]
        assets.append(_task_asset(p, t, deps, engine))
    known = {".".join(a.key.path) for a in assets}
    for table, tr in rules.items():
        if table not in known:
            raise PipelineError(f"{tr.source}: table {table} is not an asset of pipeline {p.name} "
                                f"(its assets: {', '.join(sorted(known))})")
    checks = build_quality_checks(assets, rules, {}) if rules else []
    job = dg.define_asset_job(f"{p.name}_job", selection=dg.AssetSelection.groups(p.name),
                              description=f"Pipeline {p.name} from {p.path.name}")
    schedule = None
    if p.schedule:
        schedule = dg.ScheduleDefinition(name=f"{p.name}_schedule", cron_schedule=p.schedule, job=job,
                                         execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED,
                                         description=f"{p.schedule} (UTC), from {p.path.name}")
    return PipelineDefs(p, assets, checks, job, schedule)


def _demote(rule):
    from dataclasses import replace

    return replace(rule, severity="warning")


def _task_asset(p: Pipeline, t: Task, deps: list[dg.AssetKey], engine: str | None) -> dg.AssetsDefinition:
    grain = {
        "extract": "One row per source row (latest version by key), extracted",
        "transform": "One row per result row of the transform",
        "load": "One row per loaded row",
    }[t.type]

    @dg.asset(
        key=asset_key(p, t),
        deps=deps,
        group_name=p.name,
        owners=[p.owner] if p.owner else None,
        kinds=_kinds(t, engine),
        retry_policy=_retry(t),
        pool="warehouse",
        description=t.description or f"{grain}: task {t.name} ({t.type}) of pipeline {p.name} ({p.path.name}).",
        metadata={"pipeline": p.name, "task": t.name, "task_type": t.type, "file": str(p.path),
                  "timeout_s": t.timeout_s, "max_retries": t.max_retries},
        op_tags={"dataeng/pipeline": p.name, "dataeng/task": t.name},
    )
    def _task(context: dg.AssetExecutionContext, config: PipelineConfig, warehouse: WarehouseResource):
        try:
            with time_limit(t.timeout_s, t.name):
                metadata = run_task(context, p, t, warehouse, config.full_refresh)
        except TaskTimeout as e:
            raise dg.Failure(description=str(e)) from None
        return dg.MaterializeResult(metadata=metadata)

    _task.__name__ = f"{p.name}__{t.name}"
    return _task


def run_task(context, p: Pipeline, t: Task, warehouse: WarehouseResource, full_refresh: bool) -> dict:
    if t.type == "extract":
        return _extract(context, p, t, warehouse, full_refresh)
    if t.type == "transform":
        return _transform(context, p, t, warehouse)
    return _load(p, t, warehouse)


def _extract(context, p: Pipeline, t: Task, warehouse: WarehouseResource, full_refresh: bool) -> dict:
    from dataeng_assets.lib.extract import Source, discover, extract_table

    db_url, table = split_url(resolve_env(str(t.params["source"])))
    source = Source(env.source_database(override=db_url))
    spec = discover(source, table, t.params.get("key"), t.params.get("incremental_field"))
    with warehouse.session() as s:
        r = extract_table(s, source, spec, full_refresh, detect_deletes=True, schema_name=p.name, target_name=t.name)
    return {"row_count": r.rows_total, "rows_extracted": r.rows, "deleted_in_source": r.deleted_in_source,
            "full_refresh": r.full_refresh,
            "watermark_before": str(r.watermark_before) if r.watermark_before else "none (first load)",
            "watermark_after": str(r.watermark_after) if r.watermark_after else "none"}


def render_sql(p: Pipeline, t: Task, text: str) -> str:
    """`{{ task }}` becomes that task's quoted table; nothing else is substituted."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in {x.name for x in p.tasks}:
            raise PipelineError(f"{p.path}:{t.line}: task {t.name}: the SQL refers to unknown task {{{{ {name} }}}}")
        return table_of(p, name)

    return _REF.sub(one, text).strip().rstrip(";")


def _transform(context, p: Pipeline, t: Task, warehouse: WarehouseResource) -> dict:
    with warehouse.session() as s:
        if "sql" in t.params:
            result = render_sql(p, t, p.resolve_path(str(t.params["sql"])).read_text(encoding="utf-8"))
        else:
            module, func = str(t.params["script"]).split(":")
            fn = getattr(importlib.import_module(module), func)
            result = fn(context=context, session=s, inputs={d: table_of(p, d) for d in t.depends_on})
        if isinstance(result, str):
            loaded = s.replace_rows_from_query(p.name, t.name, result, None, None, [])
        elif isinstance(result, (pa.Table, pa.RecordBatchReader)):
            loaded = s.replace_rows(p.name, t.name, result)
        else:
            raise PipelineError(f"task {t.name}: the script returned {type(result).__name__}; return SQL or Arrow")
    return {"row_count": loaded.inserted, "rows_replaced": loaded.deleted}


def _same_database(url: str) -> bool:
    here = env.warehouse_database()
    there = env.warehouse_database(override=url)
    return (here.kind, here.path or here.url) == (there.kind, there.path or there.url)


def _load(p: Pipeline, t: Task, warehouse: WarehouseResource) -> dict:
    db_url, schema, table = target_of(t)
    src = table_of(p, t.depends_on[0])
    staged = "__dataeng_load"
    with warehouse.session() as s:
        if _same_database(db_url):
            return _load_into(s, t, schema, table, staged, lambda: s.execute(f"CREATE TEMP TABLE {staged} AS SELECT * FROM {src}"))
        with Warehouse(env.warehouse_database(override=db_url)).session() as dest:
            return _load_into(dest, t, schema, table, staged, lambda: dest.stage_arrow(staged, s.reader(f"SELECT * FROM {src}")))


def _load_into(s: Session, t: Task, schema: str, table: str, staged: str, stage) -> dict:
    target = qualified(schema, table)
    mode = t.params["mode"]
    with s.transaction():
        stage()
        arrow_schema = s.to_arrow(f"SELECT * FROM {staged} LIMIT 0").schema
        s.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}")
        s.ensure_table(schema, table, arrow_schema)
        n = int(s.fetchone(f"SELECT count(*) FROM {staged}")[0])
        deleted = 0
        if mode == "replace":
            deleted = s.rowcount(f"DELETE FROM {target}")
        elif mode == "upsert":
            keys = ", ".join(ident(k) for k in t.params["keys"])
            dupes = s.fetchone(f"SELECT count(*) FROM (SELECT {keys} FROM {staged} GROUP BY {keys} HAVING count(*) > 1) d")[0]
            if dupes:
                raise dg.Failure(description=f"task {t.name}: {dupes} key(s) ({keys}) occur more than once in the input; "
                                 "an upsert needs one row per key")
            deleted = s.rowcount(f"DELETE FROM {target} WHERE ({keys}) IN (SELECT {keys} FROM {staged})")
        cols = ", ".join(ident(f.name) for f in arrow_schema)
        s.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staged}")
        s.execute(f"DROP TABLE {staged}")
        total = int(s.fetchone(f"SELECT count(*) FROM {target}")[0])
    return {"row_count": total, "rows_loaded": n, "rows_replaced": deleted, "mode": mode, "target": f"{schema}.{table}"}
