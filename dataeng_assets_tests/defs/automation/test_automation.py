"""The arrival sensor (tick evaluation with cursor) and the daily schedule."""

import json
import os
import time
from datetime import datetime, timezone

import dagster as dg

from dataeng_assets.defs.automation.sensors import events_arrival_sensor, new_drops
from dataeng_assets.defs.resources import build_resources
from dataeng_assets.lib import env
from dataeng_assets_tests.conftest import event, write_drop


def tick(cursor=None):
    with dg.build_sensor_context(cursor=cursor, resources=build_resources()) as context:
        result = events_arrival_sensor(context)
    return [r.partition_key for r in result.run_requests], result.cursor, result.run_requests


def test_sensor_fires_once_per_marker(data_home):
    landing = env.data_home() / "landing"
    write_drop(landing, "2024-01-14", [event("a", 1, "2024-01-14T00:00:00Z")])
    write_drop(landing, "2024-01-15", [event("b", 1, "2024-01-15T00:00:00Z")], marker=False)
    keys, cursor, requests = tick()
    assert keys == ["2024-01-14"]  # the 15th has no marker yet: not complete
    assert requests[0].run_key.startswith("events-2024-01-14-")
    keys, cursor2, _ = tick(cursor)
    assert keys == [] and json.loads(cursor2) == json.loads(cursor)
    (landing / "events" / "date=2024-01-15" / "_SUCCESS").write_text("")
    keys, cursor3, _ = tick(cursor2)
    assert keys == ["2024-01-15"]
    # A re-delivered drop (new marker) is requested again; the cursor knows the new version.
    marker = landing / "events" / "date=2024-01-14" / "_SUCCESS"
    later = time.time() + 5
    os.utime(marker, (later, later))
    keys, _, _ = tick(cursor3)
    assert keys == ["2024-01-14"]


def test_sensor_ignores_folders_outside_the_partitions(data_home):
    landing = env.data_home() / "landing"
    write_drop(landing, "2023-06-01", [event("a", 1, "2023-06-01T00:00:00Z")])  # before the start
    (landing / "events" / "junk").mkdir(parents=True)
    (landing / "events" / "junk" / "_SUCCESS").write_text("")
    keys, cursor, _ = tick()
    assert keys == [] and json.loads(cursor) == {}


def test_new_drops_is_pure():
    days, cursor, skipped = new_drops(
        [("date=2024-01-02", 2.0), ("date=2024-01-01", 1.0), ("other", 3.0)],
        {"2024-01-01": "1.000000"},
        {"2024-01-01", "2024-01-02"},
    )
    assert days == ["2024-01-02"] and skipped == ["other"]
    assert cursor == {"2024-01-01": "1.000000", "2024-01-02": "2.000000"}


def test_schedule_requests_the_previous_day_at_two():
    when = datetime(2024, 1, 21, 2, 0, tzinfo=timezone.utc)
    context = dg.build_schedule_context(scheduled_execution_time=when)
    from dataeng_assets.definitions import defs

    d = defs()
    schedule = d.resolve_schedule_def("user_analytics_daily")
    assert schedule.cron_schedule == "0 2 * * *"
    data = schedule.evaluate_tick(context)
    [request] = data.run_requests
    assert request.partition_key == "2024-01-20"
