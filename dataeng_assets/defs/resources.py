"""Resources under fixed keys; the implementation behind each is chosen by the environment
(lib/env.py) when a run starts, never here at import."""

import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from dataeng_assets.lib.dbt import PROJECT_DIR
from dataeng_assets.lib.io_managers import LakeIOManager, WarehouseIOManager
from dataeng_assets.lib.resources import LakeResource, LandingZone, StreamResource, WarehouseResource

SASL_ENV = {"sasl_username": "DATAENG_KAFKA_SASL_USERNAME", "sasl_password": "DATAENG_KAFKA_SASL_PASSWORD"}


def build_resources(
    lake_url: str | None = None,
    warehouse_url: str | None = None,
    landing_url: str | None = None,
) -> dict:
    """The resource dict; explicit URLs override the environment (tests pass them)."""
    lake = LakeResource(url=lake_url)
    warehouse = WarehouseResource(url=warehouse_url)
    return {
        "lake": lake,
        "landing": LandingZone(url=landing_url),
        "warehouse": warehouse,
        # Kafka SASL credentials only as EnvVar (the UI shows the variable, never the value)
        "stream": StreamResource(**{field: dg.EnvVar(var) for field, var in SASL_ENV.items() if os.environ.get(var)}),
        "lake_io_manager": LakeIOManager(lake=lake),
        "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
        "dbt": DbtCliResource(
            project_dir=str(PROJECT_DIR), profiles_dir=str(PROJECT_DIR),
            # the venv's dbt, also when the venv is not activated (make targets call .venv/bin/…)
            dbt_executable=str(Path(sys.executable).with_name("dbt")),
        ),
    }
