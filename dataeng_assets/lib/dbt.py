"""dbt glue: the project, its environment derived from DATAENG_WAREHOUSE_URL, the manifest, the
translator to [schema, table] asset keys, and the CLI arguments (pure, unit-tested)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from dataeng_assets.lib import env
from dataeng_assets.lib.env import ConfigError, Database

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
MANIFEST = PROJECT_DIR / "target" / "manifest.json"


def dbt_env(db: Database) -> dict[str, str]:
    """The DATAENG_DBT_* variables profiles.yml reads, from the one warehouse URL."""
    if db.kind == "duckdb":
        return {"DATAENG_DBT_TARGET": "duckdb", "DATAENG_DBT_DUCKDB_PATH": str(db.path)}
    parts = urlsplit(db.url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    return {
        "DATAENG_DBT_TARGET": "postgres",
        "DATAENG_DBT_PG_HOST": host,
        "DATAENG_DBT_PG_PORT": str(parts.port or (query.get("port") or ["5432"])[0]),
        "DATAENG_DBT_PG_USER": unquote(parts.username or "postgres"),
        "DATAENG_DBT_PG_PASSWORD": unquote(parts.password or ""),
        "DATAENG_DBT_PG_DBNAME": parts.path.lstrip("/") or "postgres",
    }


def apply_dbt_env(db: Database | None = None) -> None:
    """Export the dbt variables for this process and the dbt subprocesses it starts."""
    os.environ.update(dbt_env(db or env.warehouse_database()))


def prepare_manifest(force: bool = False) -> Path:
    """`dbt parse` into target/manifest.json: at build time (make, CI), never at import.

    Parsing needs no warehouse: the DuckDB target with an in-memory path is enough.
    """
    if MANIFEST.exists() and not force:
        return MANIFEST
    dbt = str(Path(sys.executable).with_name("dbt"))
    run_env = {**os.environ, "DATAENG_DBT_TARGET": "duckdb", "DATAENG_DBT_DUCKDB_PATH": ":memory:",
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    out = subprocess.run(
        [dbt, "parse", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR), "--quiet"],
        env=run_env, capture_output=True, text=True, cwd=PROJECT_DIR,
    )
    if out.returncode != 0:
        raise ConfigError(f"dbt parse failed:\n{out.stdout[-4000:]}\n{out.stderr[-2000:]}")
    return MANIFEST


def partition_vars(start: date, end_exclusive: date) -> dict[str, str]:
    return {"min_date": start.isoformat(), "max_date": end_exclusive.isoformat()}


def build_args(command: str = "build", vars_: Mapping[str, str] | None = None) -> list[str]:
    """dbt CLI arguments; partition windows travel as --vars (JSON)."""
    import json

    args = [command]
    if vars_:
        args += ["--vars", json.dumps(dict(vars_), sort_keys=True)]
    return args


class Translator(DagsterDbtTranslator):
    """Models, snapshots and seeds become [schema, table]; groups and owners come from dbt meta."""

    def __init__(self):
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project=None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] in ("model", "snapshot", "seed"):
            meta = (props.get("config") or {}).get("meta", {}).get("dagster", {}) or props.get("meta", {}).get("dagster", {})
            engine = env.warehouse_database().kind if _env_ok() else "duckdb"
            spec = spec.replace_attributes(
                key=dg.AssetKey([props["schema"], props["name"]]),
                owners=meta.get("owners") or spec.owners,
                kinds={"dbt", engine},
            )
        return spec


def _env_ok() -> bool:
    try:
        env.warehouse_database()
        return True
    except ConfigError:
        return False
