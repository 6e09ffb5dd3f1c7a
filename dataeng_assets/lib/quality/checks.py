"""The check factory: Pandera models and YAML rules become Dagster asset checks.

Per asset: the Pandera model is one blocking ERROR gate (`<table>_gate`, plus a WARN
`<table>_advisory` for checks declared `raise_warning=True`), and every YAML rule is one check
of its own severity (critical: blocking ERROR; warning: WARN). All checks of one op run in one
`multi_asset_check` step (one subprocess, one scan per table), per partition of the run; each
evaluation is stored in the metric history that anomaly rules, alerts and the report read.
"""


import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
import pandera.pandas as pa

from dataeng_assets.lib.quality import history
from dataeng_assets.lib.quality.engine import (
    ALL,
    Outcome,
    Relation,
    evaluate,
    lake_relation,
    warehouse_relation,
)
from dataeng_assets.lib.quality.pandera_rules import gate_rules, merge
from dataeng_assets.lib.quality.rules import Rule, RulesError, TableRules
from dataeng_assets.lib.resources import LakeResource, WarehouseResource

MAX_FAILURES_SHOWN = 20
WHOLE_TABLE = "none"  # `partition_column: none`: a partitioned asset whose checks read the whole table
TREND_POINTS = 5


@dataclass
class CheckPlan:
    name: str
    severity: str  # critical | warning
    rules: list[Rule]
    description: str

    @property
    def blocking(self) -> bool:
        return self.severity == "critical"

    @property
    def dagster_severity(self) -> dg.AssetCheckSeverity:
        return dg.AssetCheckSeverity.ERROR if self.blocking else dg.AssetCheckSeverity.WARN


@dataclass
class AssetQuality:
    """Everything checked on one asset, and where its rows live."""

    key: dg.AssetKey
    lake: bool
    partition_column: str | None
    partitioned: bool
    checks: list[CheckPlan] = field(default_factory=list)

    @property
    def table(self) -> str:
        return ".".join(self.key.path)

    def specs(self) -> list[dg.AssetCheckSpec]:
        return [
            dg.AssetCheckSpec(c.name, asset=self.key, description=c.description, blocking=c.blocking,
                              metadata={"severity": c.severity})
            for c in self.checks
        ]


def plan(
    key: dg.AssetKey,
    rules: TableRules | None,
    model: pa.DataFrameSchema | None,
    *,
    partitioned: bool,
    partition_column: str | None,
) -> AssetQuality:
    table = ".".join(key.path)
    column = (rules.partition_column if rules else None) or partition_column
    if column == WHOLE_TABLE:
        column, partitioned = None, False
    if partitioned and not column:
        where = rules.source if rules else table
        raise RulesError(f"{where}: {table} is partitioned: give `partition_column:` so checks read only the run's partitions")
    aq = AssetQuality(key, key.path[0] == "lake", column if partitioned else None, partitioned)
    specs = rules.schema if rules else []
    if model is not None or specs:
        merged = merge(model, specs, table)
        schema_rule, gate, advisory = gate_rules(table, merged)
        short = key.path[-1]
        aq.checks.append(CheckPlan(f"{short}_gate", "critical", [schema_rule, *gate],
                                   f"Pandera model {merged.name}: columns, types, nullability, ranges, enums, "
                                   "patterns, uniqueness; pushed down as SQL. Blocks downstream assets."))
        if advisory:
            aq.checks.append(CheckPlan(f"{short}_advisory", "warning", advisory,
                                       f"Advisory checks of Pandera model {merged.name} (raise_warning)."))
    for rule in rules.rules if rules else []:
        aq.checks.append(CheckPlan(rule.name, rule.severity, [rule], rule.description or describe(rule)))
    names = [c.name for c in aq.checks]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RulesError(f"{table}: check names {sorted(dupes)} are used twice; rename a rule with `name:`")
    return aq


def describe(rule: Rule) -> str:
    p = {k: v for k, v in rule.params.items() if not k.startswith("exclusive_")}
    args = ", ".join(f"{k}={v}" for k, v in p.items())
    on = f" on {rule.column}" if rule.column else ""
    return f"{rule.type}{on}" + (f" ({args})" if args else "") + f" [{rule.severity}]"


# ---------------------------------------------------------------- running
@dataclass
class CheckOutcome:
    plan: CheckPlan
    passed: bool
    metadata: dict


def run_partition_keys(context, partitions_def: dg.PartitionsDefinition | None) -> list[str] | None:
    if partitions_def is None:
        return None
    return list(partitions_def.get_partition_keys_in_range(context.partition_key_range))


@contextmanager
def open_relation(aq: AssetQuality, lake: LakeResource, session, keys: list[str] | None) -> Iterator[Relation]:
    if aq.lake:
        dataset = lake.get().handle(aq.key.path, keys, aq.partition_column or "date")
        with lake_relation(dataset, aq.table, aq.partition_column, keys) as rel:
            yield rel
    else:
        schema, table = aq.key.path[0], aq.key.path[-1]
        yield warehouse_relation(session, schema, table, aq.partition_column, keys)


def run_checks(
    aq: AssetQuality,
    plans: Sequence[CheckPlan],
    lake: LakeResource,
    warehouse: WarehouseResource,
    keys: list[str] | None,
    run_id: str,
    now: dt.datetime | None = None,
) -> list[CheckOutcome]:
    """Evaluate `plans` on the run's partitions, judge anomalies, store the history."""
    now = now or dt.datetime.now(dt.timezone.utc)
    rules = [r for p in plans for r in p.rules]
    with warehouse.session() as session:
        with open_relation(aq, lake, session, keys) as rel:
            outcomes = evaluate(rel, rules, now)
        partition_dates = {k: (now.date() if k == ALL else dt.date.fromisoformat(k)) for k in _keys(outcomes)}
        for rule in rules:
            if rule.type == "anomaly":
                _judge_anomaly(session, aq.table, rule, outcomes[rule.name], partition_dates)
        rows = [
            history.Row(aq.table, p.name, r.name, _history_key(k, partition_dates), partition_dates[k],
                        o.metric, o.passed, r.severity, str(o.observed), o.threshold, o.failing_rows, run_id, now)
            for p in plans for r in p.rules for k, o in outcomes[r.name].items()
        ]
        history.record(session, aq.table, rows)  # one transaction (replace_rows)
        return [_outcome(session, aq, p, outcomes, partition_dates) for p in plans]


def _keys(outcomes: Mapping[str, Mapping[str, Outcome]]) -> list[str]:
    return sorted({k for per in outcomes.values() for k in per})


def _history_key(key: str, dates: Mapping[str, dt.date]) -> str:
    # an unpartitioned table keeps one row per day, its latest evaluation, marked with a leading "*"
    return f"{ALL}{dates[key].isoformat()}" if key == ALL else key


def _judge_anomaly(session, table: str, rule: Rule, per: dict[str, Outcome], dates: Mapping[str, dt.date]) -> None:
    p = rule.params
    earlier: list[tuple[dt.date, float]] = []  # partitions of this run, oldest first
    for key in sorted(per):
        o, day = per[key], dates[key]
        stored = history.baseline(session, table, rule.name, day, p["window"], p["same_weekday"])
        in_run = [(d, m) for d, m in earlier if not p["same_weekday"] or d.weekday() == day.weekday()]
        merged = sorted({d: m for d, m in [*stored, *in_run]}.items(), reverse=True)[: p["window"]]
        verdict = history.judge(o.metric, [m for _, m in merged], p["z_threshold"], p["min_history"], p["direction"])
        o.passed = verdict.passed
        o.detail = verdict.reason + (f"; baseline mean {verdict.mean:.4g} ± {verdict.std:.4g} over {verdict.history}"
                                     if verdict.mean is not None else "")
        if verdict.z is not None:
            o.observed = f"{p['metric']} {o.metric:.6g} (z {verdict.z:+.2f})"
        if o.metric is not None:
            earlier.append((day, o.metric))


def _outcome(session, aq: AssetQuality, p: CheckPlan, outcomes, dates) -> CheckOutcome:
    failures = []
    rows_checked = sum(o.rows for o in outcomes[p.rules[0].name].values())
    for rule in p.rules:
        for key, o in sorted(outcomes[rule.name].items()):
            if o.passed:
                continue
            failures.append({
                "partition": None if key == ALL else key, "rule": rule.name, "check": rule.type,
                "column": rule.column or ", ".join(rule.columns) or None, "observed": _plain(o.observed),
                "threshold": o.threshold, "failing_rows": o.failing_rows, "sample": o.sample, "detail": o.detail,
            })
    keys = sorted(dates)
    last = outcomes[p.rules[0].name][keys[-1]]
    if len(p.rules) > 1:  # a gate: say which of its rules
        for f in failures:
            f["observed"] = f"{f['rule']}: {f['observed']}"
    shown = failures[-1] if failures else None  # the latest failing partition
    metadata = {
        "severity": dg.MetadataValue.text(p.severity),
        "partitions": dg.MetadataValue.text(_span([k for k in keys if k != ALL])),
        "rows_checked": dg.MetadataValue.int(rows_checked),
        "observed": dg.MetadataValue.text(str(shown["observed"] if shown else _plain(last.observed))),
        "threshold": dg.MetadataValue.text(shown["threshold"] if shown else last.threshold),
        "failing_partitions": dg.MetadataValue.int(len({f["partition"] for f in failures})),
    }
    if failures:
        rule = next(r for r in p.rules if r.name == shown["rule"])
        day = dates[shown["partition"] or ALL]
        points = history.trend(session, aq.table, rule.name, day, TREND_POINTS)
        metadata["trend"] = dg.MetadataValue.text(" → ".join(f"{v:.4g}" for v in points))
        metadata["failing_rows"] = dg.MetadataValue.int(sum(f["failing_rows"] for f in failures))
        metadata["failures"] = dg.MetadataValue.json(failures[:MAX_FAILURES_SHOWN])
        metadata["summary"] = dg.MetadataValue.md(_markdown(failures[:MAX_FAILURES_SHOWN]))
    return CheckOutcome(p, not failures, metadata)


def _plain(v):
    return v if isinstance(v, (int, float, str)) or v is None else str(v)


def _span(keys: Sequence[str]) -> str:
    if not keys:
        return "unpartitioned"
    return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]} ({len(keys)})"


def _markdown(failures: list[dict]) -> str:
    rows = ["| partition | rule | column | observed | threshold | failing rows | sample |", "|---|---|---|---|---|---|---|"]
    for f in failures:
        sample = ", ".join(f["sample"]) or (f["detail"] or "")
        rows.append(f"| {f['partition'] or '–'} | {f['rule']} | {f['column'] or '–'} | {f['observed']} "
                    f"| {f['threshold']} | {f['failing_rows']} | {sample} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- Dagster definitions
def quality_checks(
    name: str, assets: Sequence[AssetQuality], partitions_def: dg.PartitionsDefinition | None
) -> dg.AssetChecksDefinition:
    partitions_def = partitions_def if any(a.partitioned for a in assets) else None
    """One step evaluating every check of `assets` (the assets of one op)."""
    by_key = {(a.key, c.name): (a, c) for a in assets for c in a.checks}

    @dg.multi_asset_check(
        name=name,
        specs=[s for a in assets for s in a.specs()],
        can_subset=True,
        pool="warehouse",  # the history lands in the warehouse: one DuckDB writer at a time
        description="Quality gates and rules of " + ", ".join(a.table for a in assets),
    )
    def _checks(context: dg.AssetCheckExecutionContext, lake: LakeResource, warehouse: WarehouseResource):
        keys = run_partition_keys(context, partitions_def)
        selected: dict[dg.AssetKey, list[CheckPlan]] = {}
        for ck in context.selected_asset_check_keys:
            aq, cp = by_key[(ck.asset_key, ck.name)]
            selected.setdefault(aq.key, []).append(cp)
        for aq in assets:
            if aq.key not in selected:
                continue
            for out in run_checks(aq, selected[aq.key], lake, warehouse, keys, context.run.run_id):
                yield dg.AssetCheckResult(asset_key=aq.key, check_name=out.plan.name, passed=out.passed,
                                          severity=out.plan.dagster_severity, metadata=out.metadata)

    return _checks


def build_quality_checks(
    assets_defs: Sequence[dg.AssetsDefinition],
    rules: Mapping[str, TableRules],
    models: Mapping[str, pa.DataFrameSchema],
) -> list[dg.AssetChecksDefinition]:
    """One multi-asset check per op that has rules or a model; unknown tables are an error."""
    known = set()
    out = []
    for ad in assets_defs:
        planned = []
        for key in sorted(ad.keys, key=lambda k: k.to_user_string()):
            table = ".".join(key.path)
            known.add(table)
            if table not in rules and table not in models:
                continue
            meta = ad.specs_by_key[key].metadata or {}
            column = meta.get("partition_column") or meta.get("partition_expr")
            planned.append(plan(key, rules.get(table), models.get(table), partitioned=ad.partitions_def is not None,
                                partition_column=column))
        if planned:
            out.append(quality_checks(f"{ad.node_def.name}_quality", planned, ad.partitions_def))
    for table in sorted(set(rules) | set(models)):
        if table not in known:
            where = rules[table].source if table in rules else "lib/quality/schemas.py"
            raise RulesError(f"{where}: table {table} is not an asset of this code location")
    return out
