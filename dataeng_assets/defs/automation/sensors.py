"""Source arrival: the seed's S3KeySensor, watching the landing zone for drop markers."""


import json
import re

import dagster as dg

from dataeng_assets.defs.analytics.assets import DROP_MARKER
from dataeng_assets.defs.automation.jobs import user_analytics_job
from dataeng_assets.defs.partitions import daily_partitions
from dataeng_assets.lib.resources import LandingZone

_DAY_FOLDER = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def new_drops(markers: list[tuple[str, float]], cursor: dict[str, str], valid_days: set[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Days whose marker is new or re-delivered since `cursor`; the updated cursor; skipped folders.

    The cursor maps day → marker version (its modification time), so a day is requested once per
    marker, and again only if the drop is delivered anew.
    """
    cursor = dict(cursor)
    days, skipped = [], []
    for folder, mtime in sorted(markers):
        m = _DAY_FOLDER.match(folder)
        if not m or m.group(1) not in valid_days:
            skipped.append(folder)
            continue
        day, version = m.group(1), f"{mtime:.6f}"
        if cursor.get(day) == version:
            continue
        cursor[day] = version
        days.append(day)
    return days, cursor, skipped


@dg.sensor(
    job=user_analytics_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests the day's partition of the user-analytics job once per complete drop "
    "(events/date=YYYY-MM-DD/_SUCCESS) in the landing zone, local or S3.",
)
def events_arrival_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    markers = list(landing.get().list_markers("events", DROP_MARKER))
    valid = set(daily_partitions.get_partition_keys())
    days, cursor, skipped = new_drops(markers, cursor, valid)
    if skipped:
        context.log.warning(f"ignored drop folders outside the partition range: {skipped[:10]}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"events-{d}-{cursor[d]}", partition_key=d) for d in days],
        cursor=json.dumps(cursor, sort_keys=True),
    )
