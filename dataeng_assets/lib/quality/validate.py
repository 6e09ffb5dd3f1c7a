"""The seed's standalone validator: a rules file against a Parquet/CSV file or a warehouse table.

The same engine as the asset checks (SQL aggregates, in DuckDB for files). Anomaly rules need
the metric history of a materialized asset and are listed as skipped; so are rules that need a
warehouse (referential integrity) when DATA is a file.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from pathlib import Path

from dataeng_assets.lib.quality.engine import ALL, QualityError, file_relation, warehouse_relation
from dataeng_assets.lib.quality.pandera_rules import gate_rules, merge
from dataeng_assets.lib.quality.rules import RulesError, TableRules, load_rules_file

WAREHOUSE_PREFIX = "warehouse://"


class InputError(ValueError):
    """DATA cannot be read, or the rules do not say which table it is."""


def pick_table(tables: list[TableRules], data: str, table: str | None) -> TableRules:
    by_name = {t.table: t for t in tables}
    if table:
        if table not in by_name:
            raise RulesError(f"no table {table} in the rules file (it has: {', '.join(by_name)})")
        return by_name[table]
    if data.startswith(WAREHOUSE_PREFIX) and data[len(WAREHOUSE_PREFIX):] in by_name:
        return by_name[data[len(WAREHOUSE_PREFIX):]]
    names = {Path(data).name.split(".")[0], *Path(data).parts}  # the file or a folder it is in
    matches = [t for t in tables if t.table.split(".")[-1] in names]
    if len(matches) == 1:
        return matches[0]
    if len(tables) == 1:
        return tables[0]
    raise RulesError(f"which table of the rules file is {data}? give --table (one of: {', '.join(by_name)})")


@contextmanager
def _relation(data: str, tr: TableRules, partition: str | None, warehouse):
    if data.startswith(WAREHOUSE_PREFIX):
        target = data[len(WAREHOUSE_PREFIX):].split(".")
        if len(target) != 2:
            raise InputError(f"{data}: expected warehouse://schema.table")
        with warehouse.session(read_only=True) as s:
            try:
                yield warehouse_relation(s, target[0], target[1], tr.partition_column if partition else None,
                                         [partition] if partition else None)
            except QualityError as e:
                raise InputError(str(e)) from None
    else:
        if not Path(data).exists():
            raise InputError(f"{data}: no such file")
        with ExitStack() as stack:
            try:
                rel = stack.enter_context(file_relation(data))
            except QualityError as e:
                raise InputError(str(e)) from None
            yield rel


def validate(data: str, rules_path: str, table: str | None = None, partition: str | None = None,
             warehouse=None) -> dict:
    """The JSON report: passed, score, failed_checks (table, column, check, observed, threshold)."""
    from dataeng_assets.lib.quality.engine import evaluate

    tr = pick_table(load_rules_file(rules_path), data, table)
    rules, skipped = [], []
    if tr.schema:
        schema_rule, gate, _ = gate_rules(tr.table, merge(None, tr.schema, tr.table))
        rules += [schema_rule, *gate]
    for r in tr.rules:
        if r.type == "anomaly":
            skipped.append({"rule": r.name, "reason": "anomaly rules need the metric history of a materialized asset"})
        elif r.type in ("referential_integrity", "point_in_time") and not data.startswith(WAREHOUSE_PREFIX):
            skipped.append({"rule": r.name, "reason": f"{r.type} needs warehouse:// data"})
        else:
            rules.append(r)
    with _relation(data, tr, partition, warehouse) as rel:
        try:
            results = evaluate(rel, rules)
        except QualityError as e:
            raise InputError(str(e)) from None
        except Exception as e:  # a column type the SQL cannot compare, a bad custom predicate
            raise InputError(f"{data}: cannot evaluate the rules: {str(e).splitlines()[0]}") from None
    checks, failed = [], []
    for rule in rules:
        for key, o in results[rule.name].items():
            entry = {
                "table": tr.table, "rule": rule.name, "check": rule.type, "severity": rule.severity,
                "column": rule.column or (", ".join(rule.columns) or None), "passed": o.passed,
                "observed": o.observed if isinstance(o.observed, (int, float, str)) or o.observed is None else str(o.observed),
                "threshold": o.threshold, "failing_rows": o.failing_rows, "sample": o.sample, "detail": o.detail,
                "partition": None if key == ALL else key,
            }
            checks.append(entry)
            if not o.passed:
                failed.append(entry)
    passed_n = sum(c["passed"] for c in checks)
    return {
        "data": data, "rules": str(rules_path), "table": tr.table,
        "passed": not failed,
        "critical_failed": any(f["severity"] == "critical" for f in failed),
        "score": round(100 * passed_n / len(checks), 1) if checks else 100.0,
        "checks": len(checks), "failed_checks": failed, "skipped": skipped,
        "rows": next(iter(next(iter(results.values())).values())).rows if results else 0,
    }


def text_report(report: dict) -> str:
    lines = [f"{report['data']} against {report['rules']} (table {report['table']}): {report['rows']} rows, "
             f"{report['checks']} checks, score {report['score']}% — {'PASSED' if report['passed'] else 'FAILED'}"]
    for f in report["failed_checks"]:
        col = f" ({f['column']})" if f["column"] else ""
        sample = f"; e.g. {', '.join(f['sample'])}" if f["sample"] else ""
        detail = f"; {f['detail']}" if f["detail"] and not sample else ""
        lines.append(f"  [{f['severity']}] {f['rule']}{col}: observed {f['observed']}, threshold {f['threshold']}{sample}{detail}")
    for s in report["skipped"]:
        lines.append(f"  [skipped] {s['rule']}: {s['reason']}")
    return "\n".join(lines)
