"""Pandera models as SQL rules: a table's model becomes its blocking gate, evaluated in-engine.

Each column's dtype and nullability, its built-in checks (ge/le/gt/lt/in_range/isin/notin/eq/
str_matches) and the table-level `unique` become `Rule`s the engine pushes down as aggregates;
nothing is pulled into pandas. Checks declared with `raise_warning=True` form the table's WARN
advisory check instead of the gate. A check the translation does not know is refused when the
definitions load, never skipped silently. The same model still validates pandas frames
(`validate_frame`), which the benchmark compares against.
"""

from __future__ import annotations

import pandas as pd
import pandera.errors
import pandera.pandas as pa

from dataeng_assets.lib.quality.rules import ColumnSpec, Rule, RulesError

_RANGE = {
    "greater_than_or_equal_to": ("min", False),
    "greater_than": ("min", True),
    "less_than_or_equal_to": ("max", False),
    "less_than": ("max", True),
}


def dtype_family(dtype) -> str | None:
    if dtype is None:
        return None
    t = str(dtype).lower()
    for needle, family in (("datetime", "timestamp"), ("timestamp", "timestamp"), ("date", "date"),
                           ("int", "integer"), ("float", "float"), ("decimal", "float"), ("bool", "boolean"),
                           ("str", "string"), ("object", "string")):
        if needle in t:
            return family
    return None


def _check_rule(table: str, column: str, check: pa.Check, severity: str) -> Rule:
    name, stats = check.name, dict(check.statistics or {})
    base = f"{column}_{name}"
    if name in _RANGE:
        bound, exclusive = _RANGE[name]
        value = stats["min_value" if bound == "min" else "max_value"]
        params = {bound: value, f"exclusive_{bound}": exclusive}
        return Rule("range", base, severity, column, params, source=f"pandera {table}.{column}")
    if name == "in_range":
        params = {"min": stats["min_value"], "max": stats["max_value"],
                  "exclusive_min": not stats.get("include_min", True), "exclusive_max": not stats.get("include_max", True)}
        return Rule("range", base, severity, column, params, source=f"pandera {table}.{column}")
    if name == "isin":
        return Rule("accepted_values", base, severity, column, {"values": list(stats["allowed_values"])},
                    source=f"pandera {table}.{column}")
    if name == "equal_to":
        return Rule("accepted_values", base, severity, column, {"values": [stats["value"]]}, source=f"pandera {table}.{column}")
    if name == "str_matches":
        pattern = stats["pattern"]
        pattern = pattern if str(pattern).startswith("^") else f"^(?:{pattern})"  # re.match anchors the start
        return Rule("regex", base, severity, column, {"pattern": pattern}, source=f"pandera {table}.{column}")
    if name == "notin":
        return Rule("accepted_values", base, severity, column,
                    {"values": list(stats["forbidden_values"]), "negate": True}, source=f"pandera {table}.{column}")
    raise RulesError(
        f"pandera model for {table}: check {name!r} on {column} cannot run in the warehouse; use a built-in "
        "check (ge, le, gt, lt, in_range, isin, eq, str_matches) or a `custom` SQL rule in the YAML"
    )


def gate_rules(table: str, schema: pa.DataFrameSchema) -> tuple[Rule, list[Rule], list[Rule]]:
    """(schema rule, gate rules, advisory rules) of a Pandera model."""
    specs, not_null, gate, advisory = [], [], [], []
    for name, col in schema.columns.items():
        declared = (col.metadata or {}).get("type")
        specs.append({"column": name, "type": dtype_family(col.dtype) or declared, "required": col.required})
        if not col.nullable:
            rule = Rule("not_null", f"{name}_not_null", "critical", name, {}, source=f"pandera {table}.{name}")
            if not col.required:
                rule.params["optional"] = True
            not_null.append(rule)
        if col.unique:
            gate.append(Rule("uniqueness", f"{name}_unique", "critical", name, {}, source=f"pandera {table}.{name}"))
        for check in col.checks:
            severity = "warning" if check.raise_warning else "critical"
            rule = _check_rule(table, name, check, severity)
            if not col.required:
                rule.params["optional"] = True  # the column may be absent: then there is nothing to check
            (advisory if check.raise_warning else gate).append(rule)
    for check in schema.checks:
        raise RulesError(f"pandera model for {table}: table-level check {check.name!r} cannot run in the warehouse; "
                         "express it as a YAML rule (row_count, custom)")
    if schema.unique:
        cols = [schema.unique] if isinstance(schema.unique, str) else list(schema.unique)
        gate.append(Rule("uniqueness", "unique_" + "_".join(cols), "critical", None, {"columns": cols},
                         source=f"pandera {table}"))
    schema_rule = Rule("schema", "schema", "critical", None, {"columns": specs}, source=f"pandera {table}")
    return schema_rule, [*not_null, *gate], advisory


def merge(model: pa.DataFrameSchema | None, specs: list[ColumnSpec], table: str) -> pa.DataFrameSchema:
    """The hand-written model, plus any column only the YAML `schema:` declares."""
    columns = dict(model.columns) if model is not None else {}
    for spec in specs:
        if spec.column in columns:
            continue
        columns[spec.column] = pa.Column(None, nullable=spec.nullable, required=True, metadata={"type": spec.type})
    name = model.name if model is not None and model.name else table.split(".")[-1]
    return pa.DataFrameSchema(columns, checks=model.checks if model is not None else None,
                              unique=model.unique if model is not None else None, name=name, strict=False)


def validate_frame(schema: pa.DataFrameSchema, df: pd.DataFrame) -> list[dict]:
    """The pandas-in-memory path (the benchmark's baseline): failures per column and check."""
    try:
        schema.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases
        return [{"column": str(c), "check": str(k), "failing_rows": int(len(g))}
                for (c, k), g in cases.groupby([cases["column"].astype(str), cases["check"].astype(str)])]
    return []
