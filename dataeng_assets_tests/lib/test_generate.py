"""The synthetic world: deterministic, complete drops, planted defects counted."""

import hashlib
import json
import sqlite3
from datetime import date

from dataeng_assets.lib import env
from dataeng_assets.lib.generate import WorldSpec, generate


def digest(folder) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_flags_same_world(data_home):
    spec = WorldSpec(days=2, end_date=date(2024, 1, 15), users=50, events_per_day=500, defects=True)
    first = generate(spec, env.landing_location(), env.source_database(), progress=False)
    d1 = digest(data_home / "landing")
    second = generate(spec, env.landing_location(), env.source_database(), progress=False)
    assert digest(data_home / "landing") == d1 and first == second
    other = generate(WorldSpec(days=2, end_date=date(2024, 1, 15), users=50, events_per_day=500, seed=7),
                     env.landing_location(), env.source_database(), progress=False)
    assert digest(data_home / "landing") != d1 and other["source"]["customers"] == 50


def test_drops_and_source_are_complete(data_home):
    spec = WorldSpec(days=3, end_date=date(2024, 1, 16), users=100, events_per_day=1_000, defects=True)
    summary = generate(spec, env.landing_location(), env.source_database(), progress=False)
    for day in ("2024-01-14", "2024-01-15", "2024-01-16"):
        folder = data_home / "landing" / "events" / f"date={day}"
        assert (folder / "_SUCCESS").exists()
        lines = (folder / "part-00000.jsonl").read_text().splitlines()
        d = next(x for x in summary["days"] if x["date"] == day)
        assert len(lines) == d["lines"] == 1_000 + d["defects"]["malformed_json"]
        good = [json.loads(line) for line in lines if line.startswith('{"event_id":"evt')]
        assert sum(1 for e in good if e["user_id"] is None) == d["defects"]["null_user_id"]
        assert sum(1 for e in good if (e["amount"] or 0) < 0) == d["defects"]["negative_amount"]
        assert {"event_id", "user_id", "session_id", "event_type", "event_timestamp", "amount", "properties"} <= set(good[0])
    con = sqlite3.connect(env.source_database().path)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in summary["source"]}
    assert counts == summary["source"]
    changed = con.execute("SELECT count(*) FROM customers WHERE updated_at > created_at").fetchone()[0]
    assert changed > 0  # customers change segment/country over time: real SCD2 history
    # LTV must sum every payment: split payments exist and add up to the order total.
    split = con.execute("SELECT count(*) FROM (SELECT order_id FROM payments GROUP BY order_id HAVING count(*) > 1)").fetchone()[0]
    assert split > 0


def test_source_on_postgres(data_home, pg_url, monkeypatch):
    import psycopg

    monkeypatch.setenv("DATAENG_SOURCE_URL", pg_url)
    spec = WorldSpec(days=2, end_date=date(2024, 1, 15), users=40, events_per_day=400)
    summary = generate(spec, env.landing_location(), env.source_database(), progress=False)
    summary2 = generate(spec, env.landing_location(), env.source_database(), progress=False)  # idempotent
    assert summary == summary2
    with psycopg.connect(pg_url) as conn:
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in summary["source"]}
        assert counts == summary["source"]
        kind = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'updated_at'"
        ).fetchone()[0]
    assert kind == "timestamp with time zone"
