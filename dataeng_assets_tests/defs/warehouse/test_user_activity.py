"""The user-activity ETL: values equal an independent Python reference on a small fixture."""

import os
import sqlite3
from collections import defaultdict
from datetime import date, datetime

import dagster as dg
import pytest

from dataeng_assets.cli import run_job
from dataeng_assets.lib import env
from dataeng_assets.lib.generate import SOURCE_DDL
from dataeng_assets.lib.warehouse import Warehouse
from dataeng_assets_tests.conftest import event, write_drop

REGISTERED = {1: "2023-12-25", 2: "2024-01-10", 3: "2024-01-01"}
SEGMENTS = {1: "consumer", 2: "corporate", 3: "home_office"}
DAYS = {
    "2024-01-14": [
        event("a1", 1, "2024-01-14T08:00:00Z", session="s1"),
        event("a2", 1, "2024-01-14T08:00:30Z", "add_to_cart", items=[1, 2], session="s1"),
        event("a3", 1, "2024-01-14T08:02:00Z", "purchase", items=[3], amount=25.5, session="s1"),
        event("a4", 1, "2024-01-14T19:00:00Z", session="s2"),                      # a bounce
        event("a5", 2, "2024-01-14T10:00:00Z", "click", session="s3"),
        event("a6", 2, "2024-01-14T10:10:00Z", "purchase", items=[4], amount=100.0, session="s3"),
    ],
    "2024-01-15": [
        event("b1", 3, "2024-01-15T09:00:00Z", "signup", session="s4"),           # a bounce
        event("b2", 1, "2024-01-15T12:00:00Z", session="s5"),
        event("b3", 1, "2024-01-15T12:00:05Z", "click", session="s5"),
    ],
}


def reference():
    """The seed's Spark job, recomputed by hand in Python."""
    events, daily = [], {}
    for day, evs in DAYS.items():
        sessions = defaultdict(list)
        for e in evs:
            sessions[(e["user_id"], e["session_id"])].append(e)
        for (user, _sid), group in sessions.items():
            times = sorted(datetime.fromisoformat(e["event_timestamp"].replace("Z", "+00:00")) for e in group)
            duration = (times[-1] - times[0]).total_seconds()
            for seq, e in enumerate(sorted(group, key=lambda e: (e["event_timestamp"], e["event_id"])), 1):
                events.append({
                    "event_id": e["event_id"], "segment": SEGMENTS[user],
                    "days_since_registration": (date.fromisoformat(day) - date.fromisoformat(REGISTERED[user])).days,
                    "session_duration": duration, "events_in_session": len(group), "event_sequence": seq,
                    "is_bounce": int(len(group) == 1),
                    "revenue_amount": e["amount"] if e["event_type"] == "purchase" else 0,
                })
        per_user = defaultdict(list)
        for (user, _sid), group in sessions.items():
            per_user[user].append(group)
        for user, groups in per_user.items():
            durations = []
            for g in groups:
                ts = sorted(datetime.fromisoformat(e["event_timestamp"].replace("Z", "+00:00")) for e in g)
                durations.append((ts[-1] - ts[0]).total_seconds())
            bounces = sum(1 for g in groups if len(g) == 1)
            evs_u = [e for g in groups for e in g]
            daily[(user, day)] = {
                "total_sessions": len(groups), "avg_session_duration": sum(durations) / len(groups),
                "bounce_sessions": bounces, "bounce_rate": bounces / len(groups),
                "event_types": ",".join(sorted({e["event_type"] for e in evs_u})),
                "total_revenue": sum(e["amount"] for e in evs_u if e["event_type"] == "purchase"),
            }
    return events, daily


@pytest.fixture
def world(warehouse_url):
    path = env.source_database().path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    con = sqlite3.connect(path)
    with con:
        for table, cols in SOURCE_DDL.items():
            con.execute(f'CREATE TABLE "{table}" ({", ".join(f"{c} {t}" for c, t in cols)})')
        for cid, reg in REGISTERED.items():
            con.execute("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (cid, f"C{cid}", f"c{cid}@x.org", SEGMENTS[cid], "US", reg, f"{reg} 00:00:00", f"{reg} 00:00:00"))
    con.close()
    for day, evs in DAYS.items():
        write_drop(env.data_home() / "landing", day, evs)


def test_user_activity_matches_the_reference(world):
    with dg.DagsterInstance.ephemeral() as instance:
        assert run_job("user_analytics_job", "2024-01-14", "2024-01-15", instance).success
        assert run_job("warehouse_job", "2024-01-14", "2024-01-15", instance).success
        assert run_job("user_activity_job", "2024-01-14", "2024-01-15", instance).success
        # rerun: replaced, not appended, and the merge gives the same values
        assert run_job("user_activity_job", "2024-01-15", "2024-01-15", instance).success
    want_events, want_daily = reference()
    with Warehouse(env.warehouse_database()).session() as s:
        got = s.to_arrow(
            "SELECT event_id, segment, days_since_registration, session_duration, events_in_session, "
            "event_sequence, is_bounce, revenue_amount FROM analytics.fact_user_events ORDER BY event_id"
        ).to_pylist()
        daily = s.to_arrow(
            "SELECT user_id, date, total_sessions, avg_session_duration, bounce_sessions, bounce_rate, "
            "event_types, total_revenue FROM analytics.user_daily_metrics"
        ).to_pylist()
        summary = s.execute("SELECT user_id, date, event_count, total_revenue FROM analytics.user_revenue_summary "
                            "ORDER BY user_id, date")
    assert got == sorted(want_events, key=lambda e: e["event_id"])
    got_daily = {(r.pop("user_id"), r.pop("date").isoformat()): r for r in daily}
    assert got_daily.keys() == want_daily.keys()
    for key, want in want_daily.items():
        for col, value in want.items():
            assert got_daily[key][col] == pytest.approx(value), (key, col)
    assert [(u, d.isoformat(), n, float(r)) for u, d, n, r in summary] == [
        (1, "2024-01-14", 4, 25.5), (1, "2024-01-15", 2, 0.0), (2, "2024-01-14", 2, 100.0), (3, "2024-01-15", 1, 0.0)]
