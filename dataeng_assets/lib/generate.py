"""A seeded, deterministic e-commerce world: an OLTP source database and daily clickstream drops.

Events are generated column-wise with numpy in chunks of at most CHUNK_EVENTS rows and written
as JSON lines by DuckDB, so memory stays bounded at 10M events a day. Every random draw comes
from a generator seeded by (seed, day, chunk): the same flags give the same bytes.

Defects (`defects=True`) are planted at fixed rates so demos and tests can show the gates:
null user_id, negative amounts, duplicate event_id, malformed JSON lines, late events (event
time on the day before the drop) and unknown customers.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone

import duckdb
import numpy as np
import pyarrow as pa

from dataeng_assets.lib.env import Database, Location
from dataeng_assets.lib.lake import Lake

# 1M events per chunk: ~150 MB of Arrow columns, large enough that DuckDB's JSON writer is
# efficient, small enough that 10M events a day stays far below the machine's memory.
CHUNK_EVENTS = 1_000_000

EVENT_TYPES = ["page_view", "click", "add_to_cart", "purchase", "signup"]
# Skewed like real clickstreams: mostly browsing, few purchases.
EVENT_TYPE_P = [0.55, 0.25, 0.12, 0.05, 0.03]
SEGMENTS = ["consumer", "corporate", "home_office"]
COUNTRIES = ["US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "AU", "BR", "IN", "JP"]
CHANNELS = ["web", "ios", "android"]
CATEGORIES = ["books", "electronics", "home", "garden", "toys", "sports", "beauty", "grocery"]
ORDER_STATUSES = ["completed", "cancelled", "returned", "pending"]
ORDER_STATUS_P = [0.85, 0.05, 0.05, 0.05]
PAYMENT_METHODS = ["card", "paypal", "bank_transfer", "gift_card"]

# Defect rates per event (or per line for malformed JSON), chosen so a 20k-event day gets a
# handful of each: enough to trip the gates, few enough not to swamp the metrics.
DEFECT_RATES = {
    "null_user_id": 0.001,
    "negative_amount": 0.002,
    "duplicate_event_id": 0.001,
    "late_event": 0.001,
    "unknown_customer": 0.001,
    "malformed_json": 0.0005,
}

DEMO_END_DATE = date(2024, 1, 20)  # the seed's run date; the demo covers the 7 days ending here


@dataclass
class WorldSpec:
    days: int = 7
    end_date: date = DEMO_END_DATE
    users: int = 2_000
    events_per_day: int = 20_000
    products: int = 200
    seed: int = 42
    defects: bool = False

    @property
    def dates(self) -> list[date]:
        return [self.end_date - timedelta(days=i) for i in range(self.days - 1, -1, -1)]


@dataclass
class DaySummary:
    date: str
    events: int
    lines: int
    files: int
    defects: dict[str, int] = field(default_factory=dict)


def _rng(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng([seed, *parts])


# ------------------------------------------------------------------ events
def _event_chunk(spec: WorldSpec, day: date, chunk: int, n: int, first_id: int) -> tuple[pa.Table, dict[str, int]]:
    rng = _rng(spec.seed, day.toordinal(), chunk)
    # Sessions: geometric lengths (mean 5 events), trimmed to exactly n events.
    lengths = rng.geometric(0.2, size=n // 4 + 16)
    ends = np.cumsum(lengths)
    n_sessions = int(np.searchsorted(ends, n)) + 1
    lengths = lengths[:n_sessions].copy()
    lengths[-1] -= int(ends[n_sessions - 1] - n)
    session_of = np.repeat(np.arange(n_sessions), lengths)
    # Skewed activity: a few users generate most sessions.
    session_user = (np.floor(spec.users * rng.random(n_sessions) ** 2) + 1).astype(np.int64)
    session_start = rng.integers(0, 86_400 - 3_600, n_sessions).astype(np.float64)
    gaps = rng.exponential(45.0, n)
    starts_idx = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gaps[starts_idx] = 0.0
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[starts_idx], lengths)
    seconds = np.minimum(session_start[session_of] + offsets, 86_399.999)
    day_start_us = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp() * 1e6)
    ts_us = day_start_us + (seconds * 1e6).astype(np.int64)

    etype = rng.choice(len(EVENT_TYPES), size=n, p=EVENT_TYPE_P)
    is_purchase = etype == EVENT_TYPES.index("purchase")
    amount = np.round(rng.lognormal(3.5, 0.8, n), 2)
    n_items = np.where(np.isin(etype, [2, 3]), rng.integers(1, 5, n), 0)
    item_values = rng.integers(1, spec.products + 1, int(n_items.sum()))
    offsets_items = np.concatenate([[0], np.cumsum(n_items)]).astype(np.int32)
    user_id = session_user[session_of]
    user_valid = np.ones(n, dtype=bool)
    event_seq = np.arange(first_id, first_id + n)
    event_ids = np.char.add(f"evt-{day:%Y%m%d}-", np.char.zfill(event_seq.astype(str), 9))
    defects: dict[str, int] = {}
    if spec.defects:
        def pick(name: str) -> np.ndarray:
            k = max(1, int(round(n * DEFECT_RATES[name])))
            return rng.choice(n, size=k, replace=False)

        idx = pick("null_user_id")
        user_valid[idx] = False
        defects["null_user_id"] = len(idx)
        purchases = np.flatnonzero(is_purchase)
        k = min(len(purchases), max(1, int(round(n * DEFECT_RATES["negative_amount"]))))
        idx = rng.choice(purchases, size=k, replace=False) if k else np.array([], dtype=int)
        amount[idx] = -amount[idx]
        defects["negative_amount"] = len(idx)
        idx = pick("duplicate_event_id")
        idx = idx[idx > 0]
        event_ids[idx] = event_ids[idx - 1]
        defects["duplicate_event_id"] = len(idx)
        idx = pick("late_event")
        ts_us[idx] -= 86_400 * 1_000_000
        defects["late_event"] = len(idx)
        idx = pick("unknown_customer")
        idx = idx[user_valid[idx]]
        user_id[idx] = spec.users + 1_000 + np.arange(len(idx))
        defects["unknown_customer"] = len(idx)

    table = pa.table(
        {
            "event_id": pa.array(event_ids.tolist(), pa.string()),
            "user_id": pa.array(user_id, pa.int64(), mask=~user_valid),
            "session_id": pa.array(
                np.char.add(f"s-{day:%Y%m%d}-{chunk:03d}-", session_of.astype(str)).tolist(), pa.string()
            ),
            "event_type": pa.DictionaryArray.from_arrays(
                pa.array(etype.astype(np.int8)), pa.array(EVENT_TYPES)
            ).cast(pa.string()),
            "ts_us": pa.array(ts_us, pa.int64()),
            "amount": pa.array(amount, pa.float64(), mask=~is_purchase),
            "items": pa.ListArray.from_arrays(pa.array(offsets_items), pa.array(item_values, pa.int64())),
            "channel": pa.DictionaryArray.from_arrays(
                pa.array(rng.integers(0, len(CHANNELS), n).astype(np.int8)), pa.array(CHANNELS)
            ).cast(pa.string()),
        }
    )
    return table, defects


_EVENTS_TO_JSON = """
COPY (
    SELECT event_id, user_id, session_id, event_type,
           strftime(make_timestamp(ts_us), '%Y-%m-%dT%H:%M:%S.%fZ') AS event_timestamp,
           amount,
           {'items': items, 'channel': channel} AS properties
    FROM chunk ORDER BY ts_us, event_id
) TO '{path}' (FORMAT json)
"""


def _malformed_lines(rng: np.random.Generator, k: int) -> list[str]:
    shapes = [
        '{"event_id": "evt-broken", "user_id": 12, "event_type": "click"',  # truncated
        "not json at all",
        '{"event_id": "evt-broken", "user_id": , "event_type": "page_view"}',
        '["a", "json", "array"]',
    ]
    return [shapes[int(i)] for i in rng.integers(0, len(shapes), k)]


def write_day(spec: WorldSpec, landing: Lake, day: date, con: duckdb.DuckDBPyConnection) -> DaySummary:
    rel = f"events/date={day:%Y-%m-%d}"
    staging = tempfile.mkdtemp(prefix="dataeng-gen-")
    try:
        files, lines, defects = [], 0, {}
        remaining, chunk, first = spec.events_per_day, 0, 1
        while remaining > 0:
            n = min(CHUNK_EVENTS, remaining)
            table, d = _event_chunk(spec, day, chunk, n, first)
            for k, v in d.items():
                defects[k] = defects.get(k, 0) + v
            path = os.path.join(staging, f"part-{chunk:05d}.jsonl")
            con.register("chunk", table)
            # The path is ours (a temp folder), never user input; COPY takes no bind parameters.
            con.execute(_EVENTS_TO_JSON.replace("{path}", path.replace("'", "''")))
            con.unregister("chunk")
            lines += n
            if spec.defects:
                rng = _rng(spec.seed, day.toordinal(), chunk, 7)
                bad = _malformed_lines(rng, max(1, int(round(n * DEFECT_RATES["malformed_json"]))))
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write("\n".join(bad) + "\n")
                defects["malformed_json"] = defects.get("malformed_json", 0) + len(bad)
                lines += len(bad)
            files.append(path)
            remaining -= n
            first += n
            chunk += 1
        landing.put_folder(staging, rel, marker="_SUCCESS")
        return DaySummary(f"{day:%Y-%m-%d}", spec.events_per_day, lines, len(files), defects)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------ OLTP source
SOURCE_DDL = {
    "customers": [
        ("customer_id", "BIGINT PRIMARY KEY"), ("name", "TEXT"), ("email", "TEXT"), ("segment", "TEXT"),
        ("country", "TEXT"), ("registration_date", "DATE"), ("created_at", "TIMESTAMP"),
        ("updated_at", "TIMESTAMP"),
    ],
    "products": [
        ("product_id", "BIGINT PRIMARY KEY"), ("name", "TEXT"), ("category", "TEXT"),
        ("unit_price", "NUMERIC(12,2)"), ("created_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
    ],
    "orders": [
        ("order_id", "BIGINT PRIMARY KEY"), ("customer_id", "BIGINT"), ("order_date", "DATE"),
        ("status", "TEXT"), ("created_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
    ],
    "order_items": [
        ("order_item_id", "BIGINT PRIMARY KEY"), ("order_id", "BIGINT"), ("product_id", "BIGINT"),
        ("quantity", "INTEGER"), ("unit_price", "NUMERIC(12,2)"), ("discount_amount", "NUMERIC(12,2)"),
        ("created_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
    ],
    "payments": [
        ("payment_id", "BIGINT PRIMARY KEY"), ("order_id", "BIGINT"), ("payment_method", "TEXT"),
        ("amount", "NUMERIC(12,2)"), ("created_at", "TIMESTAMP"),
    ],
}


def _ts(day: date, seconds: int) -> str:
    return (datetime(day.year, day.month, day.day) + timedelta(seconds=int(seconds))).isoformat(sep=" ")


def _source_rows(spec: WorldSpec) -> dict[str, list[tuple]]:
    rng = _rng(spec.seed, 0)
    first_day = spec.dates[0]
    rows: dict[str, list[tuple]] = {k: [] for k in SOURCE_DDL}
    customers = {}
    for cid in range(1, spec.users + 1):
        reg = first_day - timedelta(days=int(rng.integers(1, 730)))
        created = _ts(reg, rng.integers(0, 86_400))
        customers[cid] = [
            cid, f"Customer {cid}", f"customer{cid}@example.com",
            SEGMENTS[int(rng.integers(0, len(SEGMENTS)))], COUNTRIES[int(rng.integers(0, len(COUNTRIES)))],
            reg.isoformat(), created, created,
        ]
    prices = {}
    for pid in range(1, spec.products + 1):
        prices[pid] = round(float(rng.lognormal(3.0, 0.7)), 2)
        created = _ts(first_day - timedelta(days=400), pid)
        rows["products"].append(
            (pid, f"Product {pid}", CATEGORIES[pid % len(CATEGORIES)], prices[pid], created, created)
        )
    order_id = item_id = payment_id = 0
    orders_per_day = max(1, spec.events_per_day // 40)
    for day in spec.dates:
        drng = _rng(spec.seed, day.toordinal(), 99)
        # ~1% of customers change segment or country each day: real SCD2 history.
        movers = drng.choice(spec.users, size=max(1, spec.users // 100), replace=False) + 1
        for cid in movers.tolist():
            c = customers[cid]
            if drng.random() < 0.5:
                c[3] = SEGMENTS[(SEGMENTS.index(c[3]) + 1) % len(SEGMENTS)]
            else:
                c[4] = COUNTRIES[(COUNTRIES.index(c[4]) + 1) % len(COUNTRIES)]
            c[7] = _ts(day, drng.integers(0, 86_400))
        custs = (np.floor(spec.users * drng.random(orders_per_day) ** 2) + 1).astype(int)
        secs = np.sort(drng.integers(0, 86_400, orders_per_day))
        for cid, sec in zip(custs.tolist(), secs.tolist(), strict=True):
            order_id += 1
            status = ORDER_STATUSES[int(drng.choice(4, p=ORDER_STATUS_P))]
            created = _ts(day, sec)
            updated = _ts(day, min(86_399, sec + 600)) if status != "completed" else created
            rows["orders"].append((order_id, cid, day.isoformat(), status, created, updated))
            total = 0.0
            for _ in range(int(drng.integers(1, 5))):
                item_id += 1
                pid = int(drng.integers(1, spec.products + 1))
                qty = int(drng.integers(1, 4))
                discount = round(prices[pid] * qty * 0.1, 2) if drng.random() < 0.2 else 0.0
                total += prices[pid] * qty - discount
                rows["order_items"].append((item_id, order_id, pid, qty, prices[pid], discount, created, created))
            method = PAYMENT_METHODS[int(drng.integers(0, len(PAYMENT_METHODS)))]
            if drng.random() < 0.1:  # split payments: LTV must sum every payment of an order
                first_part = round(total / 2, 2)
                parts = [first_part, round(total - first_part, 2)]
            else:
                parts = [round(total, 2)]
            for amount in parts:
                payment_id += 1
                rows["payments"].append((payment_id, order_id, method, amount, created))
    rows["customers"] = [tuple(c) for c in customers.values()]
    return rows


def write_source(spec: WorldSpec, db: Database) -> dict[str, int]:
    """Recreate the OLTP source tables with the world's rows (idempotent: drop and refill)."""
    rows = _source_rows(spec)
    if db.kind == "sqlite":
        os.makedirs(os.path.dirname(db.path), exist_ok=True)
        con = sqlite3.connect(db.path)
        try:
            with con:
                for table, cols in SOURCE_DDL.items():
                    con.execute(f'DROP TABLE IF EXISTS "{table}"')
                    con.execute(f'CREATE TABLE "{table}" ({", ".join(f"{c} {t}" for c, t in cols)})')
                    marks = ", ".join("?" * len(cols))
                    con.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows[table])
        finally:
            con.close()
    else:
        import psycopg

        with psycopg.connect(db.url) as conn:
            for table, cols in SOURCE_DDL.items():
                ddl = ", ".join(f"{c} {t.replace('TIMESTAMP', 'TIMESTAMPTZ')}" for c, t in cols)
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')
                conn.execute(f'CREATE TABLE "{table}" ({ddl})')
                with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
                    for row in rows[table]:
                        copy.write_row(row)
    return {k: len(v) for k, v in rows.items()}


# ------------------------------------------------------------------ entry point
def generate(spec: WorldSpec, landing: Location, source: Database, progress: bool | None = None) -> dict:
    from tqdm import tqdm

    store = Lake(landing)
    show = sys.stderr.isatty() if progress is None else progress
    counts = write_source(spec, source)
    days = []
    con = duckdb.connect()
    try:
        for day in tqdm(spec.dates, desc="events", unit="day", disable=not show):
            days.append(write_day(spec, store, day, con))
    finally:
        con.close()
    return {"spec": {**asdict(spec), "end_date": spec.end_date.isoformat()}, "source": counts, "days": [asdict(d) for d in days]}
