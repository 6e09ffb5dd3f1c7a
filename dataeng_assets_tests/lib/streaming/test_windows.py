"""Event-time windows against an independent reference: a full recomputation in plain Python of
what the incremental SQL keeps per micro-batch, on DuckDB and PostgreSQL."""

import datetime as dt
import json
import random
from collections import Counter, defaultdict

import pyarrow as pa

from dataeng_assets.lib import env
from dataeng_assets.lib.lake import Lake
from dataeng_assets.lib.streaming.ingest import BATCH, Batch, ingest_batch
from dataeng_assets.lib.streaming.windows import WindowSettings
from dataeng_assets.lib.warehouse import Warehouse

UTC = dt.timezone.utc
BASE = dt.datetime(2024, 1, 14, 10, 0, tzinfo=UTC)
SETTINGS = WindowSettings(lateness=dt.timedelta(minutes=20), session_gap=dt.timedelta(minutes=30))


class ListSource:
    """Batches handed in by the test; nothing to commit."""

    def commit(self, batch):
        pass

    def dead_letter(self, rows):
        pass


def ev(eid: str, user: int, minute: float, etype: str = "page_view", amount: float | None = None) -> dict:
    return {"event_id": eid, "user_id": user, "event_type": etype, "amount": amount,
            "event_timestamp": (BASE + dt.timedelta(minutes=minute)).isoformat()}


PARTITIONS = [0, 1, 2]


T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)  # processing time of the first batch


def clock(batches, seconds_apart: float = 1.0) -> list[dt.datetime]:
    return [T0 + dt.timedelta(seconds=n * seconds_apart) for n in range(len(batches))]


def run(batches: list[list[dict]], partitions=None, times=None) -> dict:
    lake = Lake(env.lake_location())
    with Warehouse(env.warehouse_database()).session() as s:
        results = []
        for n, events in enumerate(batches):
            payloads = [json.dumps(e) for e in events]
            positions = [f"{e['_p']}:{n:04d}{i:06d}" if "_p" in e else f"{n:04d}.{i:06d}" for i, e in enumerate(events)]
            table = pa.table([["test"] * len(events), positions, payloads], schema=BATCH)
            known = [f"test:{p}" for p in partitions] if partitions else ["landing"]
            results.append(ingest_batch(Batch(table, partitions=known), lake, s, ListSource(),
                                        now=(times or clock(batches))[n], windows=SETTINGS))
        q = {
            "pageviews": "SELECT user_id, window_start, page_views FROM stream.pageviews_5m",
            "purchases": "SELECT window_start, purchases, revenue, buyers FROM stream.purchases_15m",
            "sessions": "SELECT user_id, session_start, session_end, events, page_views, purchases, revenue "
                        "FROM stream.sessions",
            "late": "SELECT event_id FROM stream.late_events",
            "accepted": "SELECT event_id FROM stream.user_events",
            "watermark": "SELECT max_event_time FROM stream.partition_watermarks WHERE stream_partition = '*'",
        }
        got = {k: sorted(tuple(_norm(v) for v in r) for r in s.execute(sql)) for k, sql in q.items()}
    got["results"] = results
    return got


def _norm(v):
    if isinstance(v, dt.datetime):
        return v.astimezone(UTC)
    if isinstance(v, float):
        return round(v, 6)
    return v


def reference(batches: list[list[dict]], partitions=None, times=None) -> dict:
    """The semantics of windows.py, recomputed from scratch. Per batch (at processing time `now`):
    the partitions that delivered nothing for the idle timeout are left out; the watermark is the
    smallest max accepted event time over the others (none while one has no events), never going
    back, minus the lateness; each first delivery of an event_id before it is late, the others are
    accepted. Windows are then plain aggregations over all accepted events."""
    seen, accepted, late = set(), [], set()
    names = [str(p) for p in partitions] if partitions else ["landing"]
    max_time = dict.fromkeys(names)
    last_active = {}
    emitted = None

    def reached(now):
        active = [p for p in names if last_active[p] >= now - SETTINGS.idle_timeout]
        current = None if any(max_time[p] is None for p in active) or not active else min(max_time[p] for p in active)
        return emitted if current is None or (emitted is not None and emitted > current) else current

    for events, now in zip(batches, times or clock(batches), strict=True):
        for p in names:
            last_active.setdefault(p, now)
        firsts = {}
        for e in events:  # a duplicate within the batch: the first delivery wins
            firsts.setdefault(e["event_id"], e)
        for e in firsts.values():
            last_active[str(e.get("_p", "landing"))] = now
        before = reached(now)
        watermark = before - SETTINGS.lateness if before else None
        for e in firsts.values():
            t = dt.datetime.fromisoformat(e["event_timestamp"])
            if e["event_id"] in seen:
                continue
            if watermark is not None and t < watermark:
                late.add(e["event_id"])
                continue
            seen.add(e["event_id"])
            accepted.append({**e, "t": t})
            p = str(e.get("_p", "landing"))
            max_time[p] = max(max_time[p] or t, t)
        emitted = reached(now)

    def floor(t, seconds):
        return dt.datetime.fromtimestamp(int(t.timestamp()) // seconds * seconds, UTC)

    pageviews = Counter((a["user_id"], floor(a["t"], 300)) for a in accepted if a["event_type"] == "page_view")
    hop = defaultdict(lambda: [0, 0.0, set()])
    for a in accepted:
        if a["event_type"] == "purchase":
            for n in range(3):
                w = hop[floor(a["t"], 300) - dt.timedelta(minutes=5 * n)]
                w[0] += 1
                w[1] += a["amount"] or 0
                w[2].add(a["user_id"])
    sessions = []
    by_user = defaultdict(list)
    for a in accepted:
        by_user[a["user_id"]].append(a)
    for user, evs in by_user.items():
        evs.sort(key=lambda a: (a["t"], a["event_id"]))
        current = [evs[0]]
        for a in evs[1:] + [None]:
            if a is not None and a["t"] - current[-1]["t"] <= SETTINGS.session_gap:
                current.append(a)
                continue
            sessions.append((user, current[0]["t"], current[-1]["t"], len(current),
                             sum(c["event_type"] == "page_view" for c in current),
                             sum(c["event_type"] == "purchase" for c in current),
                             round(sum(c["amount"] or 0 for c in current if c["event_type"] == "purchase"), 6)))
            current = [a]
    return {
        "pageviews": sorted((u, w, n) for (u, w), n in pageviews.items()),
        "purchases": sorted((w, c, round(r, 6), len(users)) for w, (c, r, users) in hop.items()),
        "sessions": sorted(sessions),
        "late": sorted((i,) for i in late - seen),
        "accepted": sorted((i,) for i in seen),
        "watermark": [(emitted,)],
    }


FIXED = [
    [ev("a1", 1, 0), ev("a2", 1, 2), ev("a3", 1, 49), ev("b1", 2, 7, "purchase", 20.0), ev("b2", 2, 4),
     ev("a4", 1, 12, "purchase", 120.0)],
    # out of order; a5 is within the lateness and bridges user 1's two sessions; b3 is late
    [ev("c1", 3, 100, "purchase", 300.0), ev("a5", 1, 31), ev("b3", 2, 20), ev("a2", 1, 2)],
    # watermark is now 11:20: exactly at it is on time, before it is late; d1 comes twice
    [ev("a6", 1, 81), ev("a7", 1, 80), ev("b4", 2, 98, "purchase", 5.0), ev("c2", 3, 60), ev("d1", 4, 99),
     ev("d1", 4, 99)],
]


def test_windows_match_the_reference_on_a_fixed_sequence(warehouse_url):
    got = run(FIXED + [FIXED[2]])  # the last batch delivered again, as after a crash before the commit
    want = reference(FIXED)
    for k in want:
        assert got[k] == want[k], k
    # the figures the sequence was built for, by hand
    assert [r.late for r in got["results"]] == [0, 1, 1, 1]  # the replay reports c2 again, stored once
    assert [r.accepted for r in got["results"]] == [6, 2, 4, 0]
    user1 = [s for s in got["sessions"] if s[0] == 1]
    assert [(s[1], s[2], s[3]) for s in user1] == [
        (BASE, BASE + dt.timedelta(minutes=49), 5),  # a5 at 10:31 joined 10:00-10:12 and 10:49
        (BASE + dt.timedelta(minutes=80), BASE + dt.timedelta(minutes=81), 2),
    ]
    assert got["late"] == [("b3",), ("c2",)]
    assert got["watermark"] == [(BASE + dt.timedelta(minutes=100),)]  # the max event time; minus 20 min lateness
    assert (BASE + dt.timedelta(minutes=90), 2, 305.0, 2) in got["purchases"]  # 11:30-11:45: b4 and c1
    assert (BASE, 2, 140.0, 2) in got["purchases"]  # 10:00-10:15: b1 and a4


def test_windows_match_the_reference_on_random_out_of_order_batches(warehouse_url):
    rng = random.Random(7)
    events = []
    for i in range(1_500):
        minute = i * 0.2 + rng.expovariate(1 / 8) * (-1 if rng.random() < 0.5 else 1)  # jitter both ways
        etype = rng.choice(["page_view", "page_view", "click", "purchase"])
        events.append({**ev(f"e{i}", rng.randrange(12), minute, etype, round(rng.uniform(1, 250), 2)
                            if etype == "purchase" else None), "_p": i % 3})
    deliveries = events + rng.sample(events, 100)  # redeliveries
    head = deliveries[:200]
    rng.shuffle(head)
    deliveries[:200] = head
    # partition 0 is read ahead of 1 and 2 (as a backlog is): its progress must not make theirs late
    deliveries.sort(key=lambda e: e["_p"] != 0)
    batches = [deliveries[i:i + 97] for i in range(0, len(deliveries), 97)]
    got, want = run(batches, PARTITIONS), reference(batches, PARTITIONS)
    assert got["watermark"] == want["watermark"] and want["watermark"][0] is not None
    for k in want:
        assert got[k] == want[k], k
    assert want["late"] and len(want["sessions"]) > 12  # the sequence exercises lateness and gaps


def test_an_idle_partition_stops_holding_the_watermark_back_and_it_never_goes_back(warehouse_url):
    """Partition 1 falls silent: after the idle timeout (processing time) the watermark follows
    partition 0; when 1 speaks again, behind, the watermark does not go back to it."""
    p0 = lambda eid, minute: {**ev(eid, 1, minute), "_p": 0}  # noqa: E731
    p1 = lambda eid, minute: {**ev(eid, 2, minute), "_p": 1}  # noqa: E731
    batches = [[p0("a", 0), p0("b", 30), p1("z", 5)], [p0("c", 35)], [p0("d", 8)], [p1("x", 12)],
               [p0("e", 50), p1("y", 40)]]
    seconds = [0, 30, 400, 410, 420]  # idle timeout 5 min: partition 1 is idle at the third batch
    times = [T0 + dt.timedelta(seconds=x) for x in seconds]
    got, want = run(batches, [0, 1], times), reference(batches, [0, 1], times)
    for k in want:
        assert got[k] == want[k], k
    # d (10:08) is late once partition 1 no longer holds the watermark at 10:05 - 20 min; x (10:12)
    # is late because the watermark stays at 10:35 - 20 min when partition 1 (at 10:05) is back
    assert got["late"] == [("d",), ("x",)]
    assert [r.watermark for r in got["results"]] == [BASE + dt.timedelta(minutes=m) for m in (-15, -15, 15, 15, 20)]
