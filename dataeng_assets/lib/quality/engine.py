"""Rules evaluated where the data is: one aggregate scan per table and partition range.

Row-level rules (nulls, ranges, regex, accepted values, custom predicates, the schema's
nullability, distributions, anomaly metrics) become `count(*) FILTER (WHERE ...)` and other
aggregates of a single `GROUP BY partition` query; uniqueness and referential rules are one
query each. Failure samples are fetched only for rules that fail, capped at SAMPLE_SIZE values.
The same SQL runs on DuckDB (lake Parquet or the warehouse file) and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dataeng_assets.lib.events import scratch_duckdb
from dataeng_assets.lib.quality.rules import CURRENT_DATE, Rule, type_family
from dataeng_assets.lib.warehouse import DuckDBSession, Session, ident, qualified

SAMPLE_SIZE = 5  # failure cases shown per failing rule: enough to act on, no bulk PII
ALL = "*"  # the group key of an unpartitioned relation


class QualityError(RuntimeError):
    """A rule cannot be evaluated on this relation (missing table, wrong engine)."""


@dataclass
class Relation:
    """What the rules run on: a session, a FROM target and the partitions of the run."""

    session: Session
    target: str  # a quoted, qualified table or view name
    name: str  # for messages: "analytics.fact_sales"
    columns: dict[str, str]  # column -> SQL or Arrow type name
    partition_column: str | None = None
    partitions: list[str] | None = None  # YYYY-MM-DD keys; None = the whole table
    warehouse: bool = True  # references resolve in this session

    @property
    def dialect(self) -> str:
        return self.session.dialect

    def family(self, column: str) -> str | None:
        t = self.columns.get(column)
        return None if t is None else _family_of(t)


@dataclass
class Outcome:
    """One rule on one partition."""

    passed: bool
    observed: Any  # the figure compared with the threshold
    threshold: str
    metric: float | None = None  # the number the history stores (null rate, count, mean...)
    failing_rows: int = 0
    rows: int = 0
    sample: list[str] = field(default_factory=list)
    detail: str | None = None


def _family_of(sql_type: str) -> str | None:
    t = sql_type.lower()
    if t.startswith(("timestamp", "datetime")):
        return "timestamp"
    if t.startswith("date"):
        return "date"
    if t.startswith(("decimal", "numeric", "double", "float", "real", "halffloat")):
        return "float"
    if "int" in t:
        return "integer"
    if t.startswith(("bool",)):
        return "boolean"
    if t.startswith(("varchar", "string", "text", "character", "large_string", "utf8", "char")):
        return "string"
    return type_family(sql_type)


# ---------------------------------------------------------------- relations
def warehouse_relation(
    session: Session, schema: str, table: str, partition_column: str | None, partitions: list[str] | None
) -> Relation:
    columns = session.columns(schema, table)
    if not columns:
        raise QualityError(f"{schema}.{table} does not exist in the warehouse")
    return Relation(session, qualified(schema, table), f"{schema}.{table}", columns, partition_column, partitions)


@contextmanager
def lake_relation(dataset, name: str, partition_column: str | None, partitions: list[str] | None) -> Iterator[Relation]:
    """A lake dataset (a `LakeDataset`) as a DuckDB view in a private scratch database."""
    with scratch_duckdb() as con:
        dataset.register(con, "__lake")
        columns = {f.name: str(f.type) for f in dataset.schema}
        yield Relation(DuckDBSession(con), "__lake", name, columns, partition_column, partitions, warehouse=False)


@contextmanager
def file_relation(path: str, partition_column: str | None = None) -> Iterator[Relation]:
    """A Parquet or CSV file (or folder of Parquet) for the standalone validator."""
    import duckdb

    with scratch_duckdb() as con:
        reader = con.read_csv if path.lower().endswith((".csv", ".csv.gz")) else con.read_parquet
        try:
            rel = reader(path)
        except duckdb.Error as e:
            raise QualityError(f"{path}: cannot read as {'CSV' if reader == con.read_csv else 'Parquet'}: {e}") from None
        rel.create_view("__file", replace=True)
        columns = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
        yield Relation(DuckDBSession(con), "__file", path, columns, partition_column, None, warehouse=False)


# ---------------------------------------------------------------- SQL building
class _Params:
    """Collects bind values and hands out $n placeholders."""

    def __init__(self, initial: Sequence[Any] = ()):
        self.values = list(initial)

    def add(self, value: Any) -> str:
        if value == CURRENT_DATE:
            return "CURRENT_DATE"
        self.values.append(value)
        return f"${len(self.values)}"


def _col(name: str) -> str:
    return f"t.{ident(name)}"


@dataclass(frozen=True)
class _Scope:
    """The run's partitions: a WHERE clause, and how rows are grouped and labelled by partition.

    Rows group on the raw partition column; only the (few) group keys are cast to their
    YYYY-MM-DD label, never each of millions of rows.
    """

    raw: str | None  # the partition column, qualified; None for the whole table
    where: str
    params: list

    def label(self, expr: str) -> str:
        return f"CAST(CAST({expr} AS DATE) AS VARCHAR)" if self.raw else f"'{ALL}'"

    def group_by(self, *extra: str) -> str:
        cols = [c for c in (self.raw, *extra) if c]
        return f"GROUP BY {', '.join(cols)}" if cols else ""


def _partition_scope(rel: Relation) -> _Scope:
    if rel.partition_column is None or not rel.partitions:
        return _Scope(None, "", [])
    pc = _col(rel.partition_column)
    days = sorted(dt.date.fromisoformat(p) for p in rel.partitions)
    return _Scope(pc, f"WHERE {pc} >= $1 AND {pc} < $2", [days[0], days[-1] + dt.timedelta(days=1)])


def _regex(dialect: str, column: str, p: _Params, pattern: str) -> str:
    if dialect == "postgres":
        return f"CAST({column} AS TEXT) ~ {p.add(pattern)}"
    return f"regexp_matches(CAST({column} AS VARCHAR), {p.add(pattern)})"


def failing_predicate(rule: Rule, rel: Relation, p: _Params) -> str | None:
    """The rows that break a row-level rule, or None for rules judged on aggregates."""
    c = _col(rule.column) if rule.column else None
    prm = rule.params
    if rule.type in ("not_null", "null_rate"):
        return f"{c} IS NULL"
    if rule.type == "range":
        parts = []
        if "min" in prm:
            op = "<=" if prm.get("exclusive_min") else "<"
            parts.append(f"{c} {op} {p.add(prm['min'])}")
        if "max" in prm:
            op = ">=" if prm.get("exclusive_max") else ">"
            parts.append(f"{c} {op} {p.add(prm['max'])}")
        return f"({' OR '.join(parts)})"
    if rule.type == "regex":
        return f"({c} IS NOT NULL AND NOT {_regex(rel.dialect, c, p, prm['pattern'])})"
    if rule.type == "accepted_values":
        values = ", ".join(p.add(v) for v in prm["values"])
        return f"({c} IS NOT NULL AND {c} {'IN' if prm.get('negate') else 'NOT IN'} ({values}))"
    if rule.type == "custom":
        return f"(({prm['sql']}) IS NOT TRUE)"
    return None


def _aggregates(rule: Rule, rel: Relation, p: _Params) -> list[str]:
    """SELECT-list aggregates a rule needs from the scan (aliased by position later)."""
    pred = failing_predicate(rule, rel, p)
    if pred is not None:
        return [f"count(*) FILTER (WHERE {pred})"]
    c = _col(rule.column) if rule.column else None
    if rule.type == "freshness":
        return [f"max({c})"]
    if rule.type == "distribution":
        return [f"avg(CAST({c} AS DOUBLE PRECISION))", f"stddev_samp(CAST({c} AS DOUBLE PRECISION))"]
    if rule.type == "anomaly":
        metric = rule.params["metric"]
        if metric == "null_rate":
            return [f"count(*) FILTER (WHERE {c} IS NULL)"]
        if metric == "mean":
            return [f"avg(CAST({c} AS DOUBLE PRECISION))"]
        if metric == "sum":
            return [f"sum(CAST({c} AS DOUBLE PRECISION))"]
        return []
    return []


def _missing_columns(rule: Rule, rel: Relation) -> list[str]:
    cols = list(rule.columns)
    if rule.type == "schema":
        cols = [s["column"] for s in rule.params["columns"] if s.get("required", True)]
    if rule.type == "point_in_time":
        cols.append(rule.params["at"])
    return [c for c in cols if c not in rel.columns]


# ---------------------------------------------------------------- evaluation
def evaluate(rel: Relation, rules: Sequence[Rule], now: dt.datetime | None = None) -> dict[str, dict[str, Outcome]]:
    """{rule name: {partition key (or "*"): Outcome}} for every rule on every partition of the run."""
    now = now or dt.datetime.now(dt.timezone.utc)
    scope = _partition_scope(rel)
    where, base = scope.where, scope.params
    keys = sorted(rel.partitions) if (rel.partition_column and rel.partitions) else [ALL]
    results: dict[str, dict[str, Outcome]] = {}
    runnable = []
    for rule in rules:
        missing = _missing_columns(rule, rel)
        if missing and rule.params.get("optional"):
            out = Outcome(True, None, "column present", detail=f"optional column(s) {', '.join(missing)} absent")
            results[rule.name] = {k: out for k in keys}
        elif missing and rule.type != "schema":
            out = Outcome(False, None, "column present", detail=f"column(s) {', '.join(missing)} not in {rel.name}")
            results[rule.name] = {k: out for k in keys}
        else:
            runnable.append(rule)

    # one scan: row counts plus every aggregate rule
    p = _Params(base)
    select, slots = [f"{scope.label(scope.raw)} AS __p", "count(*) AS __n"], {}
    for rule in runnable:
        aggs = _aggregates(rule, rel, p)
        slots[rule.name] = (len(select), len(aggs))
        select.extend(aggs)
    rows = rel.session.execute(f"SELECT {', '.join(select)} FROM {rel.target} t {where} {scope.group_by()}", p.values)
    by_key = {r[0]: r for r in rows}
    empty = tuple([None, 0] + [None] * (len(select) - 2))
    for rule in runnable:
        start, width = slots[rule.name]
        per = {}
        for k in keys:
            row = by_key.get(k, empty)
            per[k] = _judge(rule, rel, k, int(row[1] or 0), row[start:start + width], now)
        results[rule.name] = per

    for rule in runnable:  # set-based rules: one query each
        if rule.type == "uniqueness":
            _uniqueness(rel, rule, scope, results[rule.name])
        elif rule.type in ("referential_integrity", "point_in_time"):
            _references(rel, rule, scope, results[rule.name])
    for rule in runnable:
        _attach_samples(rel, rule, scope.where, scope.params, results[rule.name])
    return results


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _judge(rule: Rule, rel: Relation, key: str, n: int, values: Sequence[Any], now: dt.datetime) -> Outcome:
    prm = rule.params
    t = rule.type
    if t == "not_null":
        bad = int(values[0] or 0)
        return Outcome(bad == 0, bad, "0 nulls", metric=bad / n if n else 0.0, failing_rows=bad, rows=n)
    if t == "null_rate":
        bad = int(values[0] or 0)
        rate = bad / n if n else 0.0
        return Outcome(rate <= prm["threshold"], round(rate, 6), f"<= {prm['threshold']}", rate, bad, n)
    if t in ("range", "regex", "accepted_values", "custom"):
        bad = int(values[0] or 0)
        return Outcome(bad == 0, bad, "0 rows outside" if t == "range" else "0 failing rows",
                       metric=float(bad), failing_rows=bad, rows=n, detail=_rule_text(rule))
    if t == "row_count":
        ok = ("min" not in prm or n >= prm["min"]) and ("max" not in prm or n <= prm["max"])
        bounds = " and ".join(f"{'>=' if k == 'min' else '<='} {int(prm[k])}" for k in ("min", "max") if k in prm)
        return Outcome(ok, n, bounds, metric=float(n), rows=n)
    if t == "freshness":
        latest = values[0]
        ref = _reference_time(prm.get("relative_to", "auto"), key, now)
        if latest is None:
            return Outcome(False, None, f"<= {prm['max_age_hours']} h", rows=n, detail="no rows with a timestamp")
        age = (ref - _as_utc(latest)).total_seconds() / 3600
        return Outcome(age <= prm["max_age_hours"], round(age, 2), f"<= {prm['max_age_hours']} h", age, rows=n,
                       detail=f"latest {latest} vs {ref.isoformat()}")
    if t == "distribution":
        mean, std = values
        if mean is None:
            return Outcome(False, None, "rows to measure", rows=n, detail="no values")
        exp, tol = prm["expected_mean"], prm["tolerance"]
        ok = abs(mean - exp) <= tol * abs(exp)
        threshold = f"mean {exp} ± {tol:.0%}"
        if "expected_stddev" in prm and std is not None:
            ok = ok and abs(std - prm["expected_stddev"]) <= tol * prm["expected_stddev"]
            threshold += f", stddev {prm['expected_stddev']} ± {tol:.0%}"
        observed = f"mean {mean:.4g}" + (f", stddev {std:.4g}" if std is not None else "")
        return Outcome(ok, observed, threshold, metric=float(mean), rows=n)
    if t == "anomaly":
        metric = prm["metric"]
        if metric == "row_count":
            value = float(n)
        elif metric == "null_rate":
            value = (int(values[0] or 0) / n) if n else 0.0
        else:
            value = None if values[0] is None else float(values[0])
        # judged against history by the caller (`anomaly.judge`); passes until then
        return Outcome(True, value, f"|z| <= {prm['z_threshold']}", metric=value, rows=n)
    if t == "schema":
        problems = []
        for spec in prm["columns"]:
            col = spec["column"]
            if col not in rel.columns:
                if spec.get("required", True):
                    problems.append(f"{col}: missing")
                continue
            have = rel.family(col)
            if spec.get("type") and have != spec["type"] and not (spec["type"] == "float" and have == "integer"):
                problems.append(f"{col}: {rel.columns[col]} is not {spec['type']}")
        return Outcome(not problems, len(problems), "0 schema problems", metric=float(len(problems)),
                       rows=n, detail="; ".join(problems) or None)
    # set-based rules are filled in by their own query
    return Outcome(True, 0, "0 failing rows", metric=0.0, rows=n)


def _rule_text(rule: Rule) -> str:
    p = rule.params
    if rule.type == "range":
        return f"{rule.column} in [{_fmt(p.get('min', '-inf'))}, {_fmt(p.get('max', 'inf'))}]"
    if rule.type == "regex":
        return f"{rule.column} ~ {p['pattern']}"
    if rule.type == "accepted_values":
        return f"{rule.column} in {p['values']}"
    return str(p.get("sql", ""))


def _as_utc(v: Any) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.timezone.utc)
    raise QualityError(f"freshness needs a date or timestamp column, got {type(v).__name__}")


def _reference_time(relative_to: str, key: str, now: dt.datetime) -> dt.datetime:
    """Backfilled partitions are judged against their own end, not against today."""
    if key != ALL and relative_to in ("auto", "partition_end"):
        day = dt.date.fromisoformat(key) + dt.timedelta(days=1)
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return now


def _uniqueness(rel: Relation, rule: Rule, scope: _Scope, per: dict[str, Outcome]) -> None:
    cols = [_col(c) for c in rule.columns]
    if rel.dialect == "duckdb":
        # Equal keys have equal hashes: grouping 64-bit hashes (not 10M strings) proves the common
        # case, no duplicates, in about 60 % of the time; any hash collision falls through to the
        # exact query below.
        h = f"hash({', '.join(cols)})"
        probe = (f"SELECT count(*) FROM (SELECT {h} AS __h FROM {rel.target} t {scope.where} "
                 f"{scope.group_by('__h')} HAVING count(*) > 1) d")
        if not rel.session.execute(probe, scope.params)[0][0]:
            return
    inner_key = f"{scope.raw} AS __r, " if scope.raw else ""
    outer = f"SELECT {scope.label('__r')}, count(*), sum(__k) FROM (SELECT {inner_key}count(*) AS __k " \
            f"FROM {rel.target} t {scope.where} {scope.group_by(*cols)} HAVING count(*) > 1) d"
    rows = rel.session.execute(outer + (" GROUP BY __r" if scope.raw else ""), scope.params)
    for key, dup_keys, dup_rows in rows:
        if key in per and dup_keys:
            o = per[key]
            per[key] = Outcome(False, int(dup_keys), "0 duplicate keys", float(dup_keys), int(dup_rows), o.rows)


def _reference_target(rule: Rule, rel: Relation) -> tuple[str, str]:
    parts = rule.params["references"].split(".")
    if len(parts) == 2:
        schema = rel.name.split(".")[0]
        parts = [schema, *parts]
    return qualified(parts[0], parts[1]), parts[2]


def _reference_predicate(rule: Rule, rel: Relation) -> str:
    if not rel.warehouse:
        raise QualityError(f"{rule.source}: {rule.type} runs on warehouse tables only ({rel.name} is not one)")
    ref, ref_col = _reference_target(rule, rel)
    c = _col(rule.column)
    cond = f"r.{ident(ref_col)} = {c}"
    if rule.type == "point_in_time":
        at, vf, vt = (_col(rule.params["at"]), ident(rule.params["valid_from"]), ident(rule.params["valid_to"]))
        cond += f" AND {at} >= r.{vf} AND (r.{vt} IS NULL OR {at} < r.{vt})"
    return f"{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {ref} r WHERE {cond})"


def _references(rel: Relation, rule: Rule, scope: _Scope, per: dict[str, Outcome]) -> None:
    pred = _reference_predicate(rule, rel)
    clause = f"{scope.where} AND {pred}" if scope.where else f"WHERE {pred}"
    sql = f"SELECT {scope.label(scope.raw)}, count(*) FROM {rel.target} t {clause} {scope.group_by()}"
    try:
        rows = rel.session.execute(sql, scope.params)
    except Exception as e:  # the referenced table is missing: say which
        raise QualityError(f"{rule.source}: cannot evaluate {rule.params['references']}: {str(e).splitlines()[0]}") from None
    for key, bad in rows:
        if key in per and bad:
            per[key] = Outcome(False, int(bad), "0 orphan rows", float(bad), int(bad), per[key].rows,
                               detail=f"{rule.column} → {rule.params['references']}")


def _attach_samples(rel: Relation, rule: Rule, where: str, base: list, per: dict[str, Outcome]) -> None:
    failing = [k for k, o in per.items() if not o.passed and o.failing_rows]
    if not failing or rule.type in ("custom", "schema", "anomaly", "not_null", "null_rate"):
        return
    p = _Params(base)
    if rule.type == "uniqueness":
        cols = ", ".join(_col(c) for c in rule.columns)
        sql = (f"SELECT {cols} FROM {rel.target} t {where} GROUP BY {cols} HAVING count(*) > 1 "
               f"ORDER BY count(*) DESC LIMIT {SAMPLE_SIZE}")
    else:
        pred = _reference_predicate(rule, rel) if rule.type in ("referential_integrity", "point_in_time") \
            else failing_predicate(rule, rel, p)
        if pred is None:
            return
        clause = f"{where} AND {pred}" if where else f"WHERE {pred}"
        sql = f"SELECT DISTINCT {_col(rule.column)} FROM {rel.target} t {clause} LIMIT {SAMPLE_SIZE}"
    sample = [", ".join("null" if v is None else str(v) for v in row) for row in rel.session.execute(sql, p.values)]
    for k in failing:
        per[k].sample = sample

