"""Quality rules in the seed's quality_rules.yaml format, parsed and validated at load time.

```
tables:
  analytics.orders:                 # the asset key with dots (lake datasets: lake.events.raw_events)
    partition_column: order_date    # which column holds the partition's day (partitioned tables)
    schema:
      - {column: order_id, type: BIGINT, nullable: false}
    checks:
      - {type: uniqueness, column: order_id}
      - {type: null_rate, column: email, threshold: 0.05, severity: warning}
```
Check types: uniqueness, null_rate, range, referential_integrity, point_in_time, row_count,
freshness, distribution, regex, accepted_values, custom, anomaly. Severity `critical` (the
default; a blocking ERROR check) or `warning` (WARN; anomaly checks default to it).
Every error names the file, the line, the table and the rule.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataeng_assets.lib import yamlfile
from dataeng_assets.lib.yamlfile import line_of

SEVERITIES = ("critical", "warning")
TYPE_FAMILIES = {
    "string": ("STRING", "VARCHAR", "TEXT", "CHAR"),
    "integer": ("INTEGER", "INT", "BIGINT", "SMALLINT", "TINYINT", "INT64", "INT32", "LONG"),
    "float": ("FLOAT", "DOUBLE", "REAL", "FLOAT64", "NUMERIC", "DECIMAL", "NUMBER"),
    "date": ("DATE",),
    "timestamp": ("TIMESTAMP", "DATETIME", "TIMESTAMPTZ"),
    "boolean": ("BOOLEAN", "BOOL"),
}
METRICS = ("row_count", "null_rate", "mean", "sum")
DIRECTIONS = ("both", "drop", "spike")
CURRENT_DATE = "CURRENT_DATE"  # the one SQL keyword allowed as a range bound

# Per type: required keys, optional keys.
_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "uniqueness": (set(), {"column", "columns"}),
    "null_rate": ({"column"}, {"threshold"}),
    "not_null": ({"column"}, set()),
    "range": ({"column"}, {"min", "max"}),
    "referential_integrity": ({"column", "references"}, set()),
    "point_in_time": ({"column", "references", "at"}, {"valid_from", "valid_to"}),
    "row_count": (set(), {"min", "max"}),
    "freshness": ({"column", "max_age_hours"}, {"relative_to"}),
    "distribution": ({"column", "expected_mean"}, {"expected_stddev", "tolerance"}),
    "regex": ({"column", "pattern"}, set()),
    "accepted_values": ({"column", "values"}, set()),
    "custom": ({"sql"}, {"description"}),
    "anomaly": ({"metric"}, {"column", "z_threshold", "min_history", "window", "same_weekday", "direction"}),
    "schema": (set(), set()),  # built from the table's `schema:` section, not written as a check
}
_COMMON = {"type", "name", "severity", "description"}
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class RulesError(ValueError):
    """A rules file the platform cannot use; the message names file, line, table and rule."""


@dataclass(frozen=True)
class ColumnSpec:
    column: str
    type: str | None  # a family of TYPE_FAMILIES, or None for any
    nullable: bool = True


@dataclass(frozen=True)
class Rule:
    type: str
    name: str
    severity: str = "critical"
    column: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    source: str = ""  # "file:line", for messages

    @property
    def blocking(self) -> bool:
        return self.severity == "critical"

    @property
    def columns(self) -> list[str]:
        if self.type == "uniqueness" and self.params.get("columns"):
            return list(self.params["columns"])
        return [self.column] if self.column else []


@dataclass
class TableRules:
    table: str  # dotted asset key: "analytics.fact_sales", "lake.events.raw_events"
    partition_column: str | None = None
    schema: list[ColumnSpec] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    source: str = ""

    @property
    def key_path(self) -> list[str]:
        return self.table.split(".")


def _where(path: str, node: Any, table: str | None = None, rule: str | None = None) -> str:
    line = line_of(node)
    parts = [f"{path}:{line}" if line else path]
    if table:
        parts.append(f"table {table}")
    if rule:
        parts.append(f"rule {rule}")
    return ", ".join(parts)


# ---------------------------------------------------------------- parsing
def load_rules_file(path: str | Path) -> list[TableRules]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RulesError(f"{path}: cannot read rules file: {e.strerror or e}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, path: str = "<rules>") -> list[TableRules]:
    try:
        doc = yamlfile.load(text, path)
    except yamlfile.YamlError as e:
        raise RulesError(str(e)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        raise RulesError(f"{path}: a rules file is a mapping with a `tables:` mapping at the top")
    unknown = set(doc) - {"tables", "__line__"}
    if unknown:
        raise RulesError(f"{_where(path, doc)}: unknown top-level key(s) {sorted(unknown)}; expected `tables`")
    out = []
    for table, body in doc["tables"].items():
        if table == "__line__":
            continue
        out.append(_parse_table(path, str(table), body))
    return out


def _parse_table(path: str, table: str, body: Any) -> TableRules:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+", table):
        raise RulesError(f"{path}: table {table!r}: name it by its asset key with dots, e.g. analytics.fact_sales")
    if not isinstance(body, dict):
        raise RulesError(f"{path}: table {table}: expected a mapping with `schema:` and/or `checks:`")
    unknown = set(body) - {"schema", "checks", "partition_column", "__line__"}
    if unknown:
        raise RulesError(f"{_where(path, body, table)}: unknown key(s) {sorted(unknown)}")
    tr = TableRules(table, body.get("partition_column"), source=_where(path, body))
    for col in body.get("schema") or []:
        tr.schema.append(_parse_column(path, table, col))
    names: set[str] = set()
    for i, raw in enumerate(body.get("checks") or [], start=1):
        rule = _parse_rule(path, table, i, raw)
        if rule.name in names:
            raise RulesError(f"{_where(path, raw, table, rule.name)}: duplicate rule name; give one a `name:`")
        names.add(rule.name)
        tr.rules.append(rule)
    validate_columns(tr)
    return tr


def type_family(declared: str) -> str | None:
    base = re.split(r"[\s(]", declared.strip().upper(), maxsplit=1)[0]
    for family, names in TYPE_FAMILIES.items():
        if base in names:
            return family
    return None


def _parse_column(path: str, table: str, raw: Any) -> ColumnSpec:
    if not isinstance(raw, dict) or "column" not in raw:
        raise RulesError(f"{_where(path, raw, table)}: a schema entry needs `column:` (and `type:`, `nullable:`)")
    unknown = set(raw) - {"column", "type", "nullable", "__line__"}
    if unknown:
        raise RulesError(f"{_where(path, raw, table)}: schema column {raw['column']}: unknown key(s) {sorted(unknown)}")
    family = None
    if raw.get("type") is not None:
        family = type_family(str(raw["type"]))
        if family is None:
            known = ", ".join(sorted({n for names in TYPE_FAMILIES.values() for n in names}))
            raise RulesError(f"{_where(path, raw, table)}: column {raw['column']}: unknown type {raw['type']!r} ({known})")
    nullable = raw.get("nullable", True)
    if not isinstance(nullable, bool):
        raise RulesError(f"{_where(path, raw, table)}: column {raw['column']}: nullable is true or false")
    return ColumnSpec(str(raw["column"]), family, nullable)


def _parse_rule(path: str, table: str, index: int, raw: Any) -> Rule:
    if not isinstance(raw, dict) or "type" not in raw:
        raise RulesError(f"{_where(path, raw, table, f'#{index}')}: a check needs `type:`")
    kind = raw["type"]
    label = raw.get("name") or f"#{index} ({kind})"
    where = _where(path, raw, table, label)
    if kind not in _KEYS or kind == "schema":
        known = ", ".join(k for k in _KEYS if k != "schema")
        raise RulesError(f"{where}: unknown check type {kind!r}; known: {known}")
    required, optional = _KEYS[kind]
    keys = set(raw) - {"__line__"}
    missing = required - keys
    if missing:
        raise RulesError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = keys - required - optional - _COMMON
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)} for {kind}")
    severity = raw.get("severity", "warning" if kind == "anomaly" else "critical")
    if severity not in SEVERITIES:
        raise RulesError(f"{where}: severity is one of {', '.join(SEVERITIES)}, not {severity!r}")
    params = {k: v for k, v in raw.items() if k not in _COMMON and k != "__line__" and k != "column"}
    try:
        params = _check_params(kind, params)
    except (TypeError, ValueError) as e:
        raise RulesError(f"{where}: {e}") from None
    column = raw.get("column")
    name = raw.get("name") or default_name(kind, column, params)
    if not _NAME.match(name):
        raise RulesError(f"{where}: rule name {name!r} must be lower_snake_case")
    return Rule(kind, name, severity, column, params, raw.get("description"), where)


def default_name(kind: str, column: str | None, params: Mapping[str, Any]) -> str:
    if kind == "anomaly":
        parts = ["anomaly", params["metric"], column]
    elif kind == "uniqueness" and params.get("columns"):
        parts = ["uniqueness", *params["columns"]]
    else:
        parts = [kind, column]
    return "_".join(p for p in parts if p)


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{what} must be a number, not {v!r}")
    return float(v)


def _bound(v: Any, what: str) -> Any:
    """A range bound: a number, a date or timestamp, or CURRENT_DATE."""
    if isinstance(v, bool):
        raise ValueError(f"{what} must be a number, a date or CURRENT_DATE")
    if isinstance(v, (int, float, dt.date)):
        return v
    if isinstance(v, str):
        if v.strip().upper() == CURRENT_DATE:
            return CURRENT_DATE
        for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
            try:
                return parse(v)
            except ValueError:
                continue
    raise ValueError(f"{what} must be a number, a date (YYYY-MM-DD), a timestamp or CURRENT_DATE, not {v!r}")


def _check_params(kind: str, p: dict[str, Any]) -> dict[str, Any]:
    if kind == "uniqueness":
        if "columns" in p and (not isinstance(p["columns"], list) or not p["columns"]):
            raise ValueError("columns is a non-empty list")
    elif kind == "null_rate":
        p["threshold"] = _number(p.get("threshold", 0.0), "threshold")
        if not 0 <= p["threshold"] <= 1:
            raise ValueError("threshold is a fraction between 0 and 1")
    elif kind in ("range", "row_count"):
        if "min" not in p and "max" not in p:
            raise ValueError("give min, max or both")
        for k in ("min", "max"):
            if k in p:
                p[k] = _number(p[k], k) if kind == "row_count" else _bound(p[k], k)
    elif kind in ("referential_integrity", "point_in_time"):
        parts = str(p["references"]).split(".")
        if len(parts) not in (2, 3) or not all(re.fullmatch(r"[a-z_][a-z0-9_]*", x) for x in parts):
            raise ValueError("references is table.column or schema.table.column")
        if kind == "point_in_time":
            p.setdefault("valid_from", "valid_from")
            p.setdefault("valid_to", "valid_to")
    elif kind == "freshness":
        p["max_age_hours"] = _number(p["max_age_hours"], "max_age_hours")
        if p.get("relative_to", "auto") not in ("auto", "now", "partition_end"):
            raise ValueError("relative_to is now or partition_end")
    elif kind == "distribution":
        p["expected_mean"] = _number(p["expected_mean"], "expected_mean")
        if "expected_stddev" in p:
            p["expected_stddev"] = _number(p["expected_stddev"], "expected_stddev")
        p["tolerance"] = _number(p.get("tolerance", 0.1), "tolerance")
    elif kind == "regex":
        try:
            re.compile(p["pattern"])
        except re.error as e:
            raise ValueError(f"pattern does not compile: {e}") from None
    elif kind == "accepted_values":
        if not isinstance(p["values"], list) or not p["values"]:
            raise ValueError("values is a non-empty list")
    elif kind == "custom":
        if not isinstance(p["sql"], str) or ";" in p["sql"] or "--" in p["sql"]:
            raise ValueError("sql is one boolean SQL expression per row (no ';' or comments)")
    elif kind == "anomaly":
        if p["metric"] not in METRICS:
            raise ValueError(f"metric is one of {', '.join(METRICS)}")
        p["z_threshold"] = _number(p.get("z_threshold", 2.0), "z_threshold")
        p["min_history"] = int(_number(p.get("min_history", 7), "min_history"))
        p["window"] = int(_number(p.get("window", 28), "window"))
        p["same_weekday"] = bool(p.get("same_weekday", False))
        if p.get("direction", "both") not in DIRECTIONS:
            raise ValueError(f"direction is one of {', '.join(DIRECTIONS)}")
        p.setdefault("direction", "both")
    return p


def needs_column(rule: Rule) -> bool:
    required, _ = _KEYS[rule.type]
    return "column" in required or (rule.type == "anomaly" and rule.params["metric"] != "row_count")


def validate_columns(tr: TableRules) -> None:
    """Rules that need a column have one (checked once the file is parsed)."""
    for r in tr.rules:
        if needs_column(r) and not r.column:
            raise RulesError(f"{r.source}: {r.type} needs `column:`")
        if r.type == "uniqueness" and not r.columns:
            raise RulesError(f"{r.source}: uniqueness needs `column:` or `columns:`")


def load_rules_dir(folder: str | Path) -> dict[str, TableRules]:
    """Every *.yaml under `folder`, one TableRules per table; a table in two files is an error."""
    out: dict[str, TableRules] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        for tr in load_rules_file(path):
            if tr.table in out:
                raise RulesError(f"{tr.source}: table {tr.table} already has rules in {out[tr.table].source}")
            out[tr.table] = tr
    return out

