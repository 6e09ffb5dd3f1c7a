"""Resources under fixed keys; the implementation behind each is chosen by the environment
(lib/env.py) when a run starts, never here at import."""

from dataeng_assets.lib.io_managers import LakeIOManager, WarehouseIOManager
from dataeng_assets.lib.resources import LakeResource, LandingZone, WarehouseResource


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
        "lake_io_manager": LakeIOManager(lake=lake),
        "warehouse_io_manager": WarehouseIOManager(warehouse=warehouse),
    }
