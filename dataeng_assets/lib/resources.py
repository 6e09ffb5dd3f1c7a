"""Resources over the environment helper. Configuration is read when a run starts, and a bad or
unreachable URL fails there with a message naming the variable and its (masked) value."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from dataeng_assets.lib import env
from dataeng_assets.lib.lake import Lake
from dataeng_assets.lib.warehouse import Session, Warehouse, WarehouseError


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake: `DATAENG_LAKE_URL` (folder or s3://bucket/prefix)."""

    url: str | None = None  # explicit override, for tests; otherwise the environment

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        env.lake_location(self.url)  # raises ConfigError naming the variable

    def get(self) -> Lake:
        return Lake(env.lake_location(self.url))


class LandingZone(dg.ConfigurableResource):
    """Where daily drops land: `DATAENG_LANDING_URL` (folder or s3://bucket/prefix)."""

    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        env.landing_location(self.url)

    def get(self) -> Lake:
        return Lake(env.landing_location(self.url))


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: `DATAENG_WAREHOUSE_URL` (DuckDB file by default, or postgresql://…)."""

    url: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        wh = self.get()
        try:
            wh.check()
        except WarehouseError:
            raise
        except Exception as e:  # noqa: BLE001 - any driver error becomes one clear message
            raise WarehouseError(f"{wh.describe()}: unreachable: {type(e).__name__}: {e}") from None

    def get(self) -> Warehouse:
        return Warehouse(env.warehouse_database(self.url))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.get().session() as s:
            yield s
