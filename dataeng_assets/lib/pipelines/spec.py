"""The declarative pipeline format (seed 004's pipeline_config.yaml, made precise), parsed and
validated when the definitions load. Every error names the file, the line and the task.

```
pipeline:
  name: customer_analytics
  schedule: "0 2 * * *"
  owner: team:analytics
  tasks:
    - {name: extract_customers, type: extract, source: "${DATAENG_SOURCE_URL}/customers",
       incremental_field: updated_at}
    - {name: customer_metrics, type: transform, depends_on: [extract_customers],
       sql: transforms/customer_metrics.sql}          # or script: package.module:function
    - {name: load_warehouse, type: load, depends_on: [customer_metrics],
       target: "${DATAENG_WAREHOUSE_URL}/analytics.customer_ltv", mode: upsert, keys: [customer_id]}
    - {name: validate_quality, type: validate, rules: rules/customer_analytics.yaml, fail_on_error: true}
  defaults: {max_retries: 3, retry_delay_s: 30, backoff: exponential, timeout_s: 3600}
```
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataeng_assets.lib import yamlfile
from dataeng_assets.lib.yamlfile import keys, line_of

TYPES = ("extract", "transform", "load", "validate")
MODES = ("append", "upsert", "replace")
BACKOFFS = ("exponential", "linear", "constant")
SOURCE_SCHEMES = ("sqlite", "postgresql", "postgres")
TARGET_SCHEMES = ("duckdb", "postgresql", "postgres")
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULTS = {"max_retries": 3, "retry_delay_s": 30.0, "backoff": "exponential", "timeout_s": 3600.0}
_TASK_KEYS = {
    "extract": ({"source"}, {"incremental_field", "key"}),
    "transform": (set(), {"sql", "script"}),
    "load": ({"target"}, {"mode", "keys"}),
    "validate": ({"rules"}, {"fail_on_error"}),
}
_COMMON = {"name", "type", "depends_on", "description", *DEFAULTS}


class PipelineError(ValueError):
    """A pipeline file the platform cannot use; names file, line and task."""


@dataclass
class Task:
    name: str
    type: str
    line: int | None
    depends_on: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    max_retries: int = 3
    retry_delay_s: float = 30.0
    backoff: str = "exponential"
    timeout_s: float = 3600.0
    description: str | None = None


@dataclass
class Pipeline:
    name: str
    path: Path
    schedule: str | None
    owner: str | None
    tasks: list[Task]

    def task(self, name: str) -> Task:
        return next(t for t in self.tasks if t.name == name)

    def resolve_path(self, relative: str) -> Path:
        return (self.path.parent / relative).resolve()


# ---------------------------------------------------------------- cron
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [None, None, None,
               ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
               ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]]
_CRON_ALIASES = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}


def cron_problem(expr: str) -> str | None:
    """None if `expr` is a valid 5-field cron (or @daily-style alias), else what is wrong."""
    if expr.strip() in _CRON_ALIASES:
        return None
    fields = expr.split()
    if len(fields) != 5:
        return f"a cron has 5 fields (minute hour day month weekday), this has {len(fields)}"
    for i, (f, (lo, hi)) in enumerate(zip(fields, _CRON_RANGES, strict=True)):
        names = _CRON_NAMES[i] or []
        for part in f.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"field {i + 1} ({f}): bad step {step!r}"
            if base == "*":
                continue
            for v in base.split("-", 1):
                low = v.lower()
                if low in names:
                    continue
                if not v.isdigit() or not lo <= int(v) <= hi:
                    return f"field {i + 1} ({f}): {v!r} is not in {lo}-{hi}"
    return None


# ---------------------------------------------------------------- URLs
def resolve_env(value: str) -> str:
    """`${VAR}` from the environment; the platform's own variables fall back to their defaults."""
    from dataeng_assets.lib import env

    defaults = {
        "DATAENG_SOURCE_URL": lambda: env.source_database().url,
        "DATAENG_WAREHOUSE_URL": lambda: env.warehouse_database().url,
        "DATAENG_HOME": lambda: str(env.data_home()),
    }

    def one(m: re.Match) -> str:
        name = m.group(1)
        if os.environ.get(name):
            return os.environ[name]
        if name in defaults:
            return defaults[name]()
        raise PipelineError(f"environment variable {name} is not set")

    return ENV_REF.sub(one, value)


def split_url(url: str) -> tuple[str, str]:
    """`<database URL>/<table>` -> (database URL, table); the table is the last path segment."""
    if "://" not in url or "/" not in url.split("://", 1)[1]:
        raise PipelineError(f"{url!r}: expected <database URL>/<table>")
    db, table = url.rsplit("/", 1)
    return db, table


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


# ---------------------------------------------------------------- parsing
def load_file(path: str | Path) -> Pipeline:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PipelineError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        doc = yamlfile.load(text, str(path))
    except yamlfile.YamlError as e:
        raise PipelineError(str(e)) from None
    return parse(doc, path)


def parse(doc: Any, path: Path) -> Pipeline:
    if not isinstance(doc, dict) or not isinstance(doc.get("pipeline"), dict):
        raise PipelineError(f"{path}: a pipeline file is a mapping with `pipeline:` at the top")
    p = doc["pipeline"]
    where = f"{path}:{line_of(p)}"
    unknown = keys(p) - {"name", "schedule", "owner", "tasks", "defaults", "description"}
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {sorted(unknown)} under pipeline")
    name = p.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise PipelineError(f"{where}: pipeline name {name!r} must be lower_snake_case")
    schedule = p.get("schedule")
    if schedule is not None:
        problem = cron_problem(str(schedule))
        if problem:
            raise PipelineError(f"{where}: pipeline {name}: bad cron {schedule!r}: {problem}")
    defaults = dict(DEFAULTS)
    raw_defaults = p.get("defaults") or {}
    bad = keys(raw_defaults) - set(DEFAULTS) if isinstance(raw_defaults, dict) else {"<not a mapping>"}
    if bad:
        raise PipelineError(f"{path}:{line_of(raw_defaults) or line_of(p)}: unknown default(s) {sorted(bad)}")
    defaults.update({k: v for k, v in raw_defaults.items() if k in DEFAULTS})
    raw_tasks = p.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise PipelineError(f"{where}: pipeline {name}: `tasks:` is a non-empty list")
    tasks: list[Task] = []
    for raw in raw_tasks:
        task = _parse_task(path, raw, defaults)
        if any(t.name == task.name for t in tasks):
            raise PipelineError(f"{path}:{task.line}: task {task.name}: duplicate task name")
        tasks.append(task)
    pipeline = Pipeline(name, path.resolve(), str(schedule) if schedule else None, p.get("owner"), tasks)
    _check_graph(pipeline)
    _check_files_and_urls(pipeline)
    return pipeline


def _parse_task(path: Path, raw: Any, defaults: dict) -> Task:
    line = line_of(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise PipelineError(f"{path}:{line or '?'}: a task is a mapping with `name:` and `type:`")
    name = raw["name"]
    at = f"{path}:{line}: task {name}"
    if not NAME.match(name):
        raise PipelineError(f"{at}: task name must be lower_snake_case")
    kind = raw.get("type")
    if kind not in TYPES:
        raise PipelineError(f"{at}: unknown type {kind!r}; expected one of {', '.join(TYPES)}")
    required, optional = _TASK_KEYS[kind]
    missing = required - keys(raw)
    if missing:
        raise PipelineError(f"{at}: a {kind} task needs {', '.join(sorted(missing))}")
    unknown = keys(raw) - required - optional - _COMMON
    if unknown:
        raise PipelineError(f"{at}: unknown key(s) {sorted(unknown)} for a {kind} task")
    depends = raw.get("depends_on") or []
    if isinstance(depends, str):
        depends = [depends]
    params = {k: v for k, v in raw.items() if k in required | optional}
    if kind == "transform" and ("sql" in params) == ("script" in params):
        raise PipelineError(f"{at}: a transform task has exactly one of `sql:` (a file) or `script:` (module:function)")
    if kind == "transform" and "script" in params and not re.fullmatch(r"[\w.]+:\w+", str(params["script"])):
        raise PipelineError(f"{at}: script is package.module:function, not {params['script']!r}")
    if kind == "load":
        mode = params.setdefault("mode", "append")
        if mode not in MODES:
            raise PipelineError(f"{at}: mode is one of {', '.join(MODES)}, not {mode!r}")
        if mode == "upsert" and not params.get("keys"):
            raise PipelineError(f"{at}: mode upsert needs `keys: [...]`")
        if len(depends) != 1:
            raise PipelineError(f"{at}: a load task loads exactly one task's output: give one `depends_on`")
    settings = {k: raw.get(k, defaults[k]) for k in DEFAULTS}
    try:
        retries, delay, timeout = int(settings["max_retries"]), float(settings["retry_delay_s"]), float(settings["timeout_s"])
    except (TypeError, ValueError):
        raise PipelineError(f"{at}: max_retries, retry_delay_s and timeout_s are numbers") from None
    if retries < 0 or delay < 0 or timeout <= 0:
        raise PipelineError(f"{at}: max_retries and retry_delay_s are >= 0, timeout_s > 0")
    if settings["backoff"] not in BACKOFFS:
        raise PipelineError(f"{at}: backoff is one of {', '.join(BACKOFFS)}")
    return Task(name, kind, line, list(depends), params, retries, delay, settings["backoff"], timeout,
                raw.get("description"))


def _check_graph(p: Pipeline) -> None:
    names = {t.name for t in p.tasks}
    for t in p.tasks:
        for d in t.depends_on:
            if d not in names:
                raise PipelineError(f"{p.path}:{t.line}: task {t.name}: depends_on unknown task {d!r}")
    cycle = find_cycle({t.name: t.depends_on for t in p.tasks})
    if cycle:
        first = p.task(cycle[0])
        raise PipelineError(f"{p.path}:{first.line}: task {first.name}: dependency cycle {' -> '.join(cycle)}")


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle as [a, b, ..., a], or None (depth-first search, deterministic order)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in graph.get(n, []):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in graph:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _check_files_and_urls(p: Pipeline) -> None:
    for t in p.tasks:
        at = f"{p.path}:{t.line}: task {t.name}"
        for key in ("sql", "rules"):
            if key in t.params and not p.resolve_path(str(t.params[key])).is_file():
                raise PipelineError(f"{at}: {key} file {t.params[key]} not found (relative to {p.path.parent})")
        for key, schemes in (("source", SOURCE_SCHEMES), ("target", TARGET_SCHEMES)):
            if key not in t.params:
                continue
            raw = str(t.params[key])
            try:
                url = resolve_env(raw)
            except PipelineError as e:
                raise PipelineError(f"{at}: {key}: {e}") from None
            scheme = scheme_of(url)
            if scheme not in schemes:
                raise PipelineError(f"{at}: {key} URL scheme {scheme or '(none)'!r} is not supported; "
                                    f"use {', '.join(s + '://' for s in schemes)}")
            _, table = split_url(url)
            parts = table.split(".")
            want = 2 if key == "target" else 1
            if len(parts) != want or not all(NAME.match(x) for x in parts):
                shape = "schema.table" if key == "target" else "table"
                raise PipelineError(f"{at}: {key} must end in /{shape}, not /{table}")
