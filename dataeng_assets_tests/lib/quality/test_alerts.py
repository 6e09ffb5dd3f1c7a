"""Alerting: the pure decisions, then the sensor's tick against a real instance (SQLite storage),
a real HTTP webhook receiver and a real SMTP server (aiosmtpd)."""

import email
import email.policy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from dataeng_assets.defs.automation.alerts import evaluate_alerts
from dataeng_assets.lib.quality.alerts import (
    AlertConfigError,
    CheckState,
    Evaluation,
    Ledger,
    decide,
    parse_config,
    route,
)
from dataeng_assets_tests.conftest import free_port

HOUR = 3600.0


def ev(record_id: int, passed: bool, severity="critical", t=0.0, group="g") -> Evaluation:
    return Evaluation("a/b:c", "a/b", "c", record_id, f"run{record_id}", passed, severity, t,
                      {"observed": "7", "threshold": "<= 5", "trend": "3 → 5 → 7", "partitions": "2024-01-02"}, group)


def test_one_alert_per_failure_cooldown_and_recovery():
    state: dict[str, CheckState] = {}
    [first] = decide([ev(1, False)], state, 6 * HOUR, "http://ui", now=0)
    assert first.kind == "check_failed" and first.id == "a/b:c#1" and first.severity == "critical"
    assert "Current: 7 (threshold: <= 5)" in first.text() and "Recent trend: 3 → 5 → 7" in first.text()
    assert first.link == "http://ui/assets/a/b?view=checks"
    assert decide([ev(2, False)], state, 6 * HOUR, "http://ui", now=HOUR) == []  # within the cooldown
    [again] = decide([ev(3, False)], state, 6 * HOUR, "http://ui", now=7 * HOUR)
    assert again.suppressed_since_last == 1
    [recovered] = decide([ev(4, True)], state, 6 * HOUR, "http://ui", now=8 * HOUR)
    assert (recovered.kind, recovered.severity) == ("check_recovered", "info")
    assert decide([ev(5, True)], state, 6 * HOUR, "http://ui", now=9 * HOUR) == []
    [fresh] = decide([ev(6, False)], state, 6 * HOUR, "http://ui", now=9.5 * HOUR)  # a new failure pages at once
    assert fresh.id == "a/b:c#6"


def test_routing_by_severity_group_and_owner():
    cfg = parse_config({
        "sinks": {"log": {"type": "log"}, "hook": {"type": "webhook", "url": {"env": "X"}},
                  "mail": {"type": "email", "host": "h", "from": "a@b", "to": ["c@d"]}},
        "routes": [{"match": {"severity": ["critical"]}, "sinks": ["mail", "log"]},
                   {"match": {"severity": ["warning"], "group": ["g"]}, "sinks": ["hook", "log"]}],
    })
    state: dict = {}
    crit = decide([ev(1, False)], state, 0, "u", now=0)[0]
    warn = decide([ev(2, False, "warning")], {}, 0, "u", now=0)[0]
    other = decide([ev(3, False, "warning", group="h")], {}, 0, "u", now=0)[0]
    assert route(crit, cfg.routes) == ["mail", "log"]
    assert route(warn, cfg.routes) == ["hook", "log"]
    assert route(other, cfg.routes) == []


@pytest.mark.parametrize("doc, message", [
    ({"sinks": {"hook": {"type": "webhook", "url": "https://hooks.slack.com/T0/B0/secret"}}}, "give url as {env: VARIABLE}"),
    ({"sinks": {"m": {"type": "email", "host": "h", "from": "a", "to": "b", "password": "hunter2"}}}, "give password as"),
    ({"sinks": {"x": {"type": "pager"}}}, "type is one of log, webhook, email"),
    ({"routes": [{"match": {"severity": ["fatal"]}, "sinks": ["log"]}]}, "severity 'fatal'"),
    ({"routes": [{"sinks": ["nowhere"]}]}, "not defined under sinks"),
])
def test_config_errors(doc, message):
    with pytest.raises(AlertConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_config(doc, "alerting.yaml")


# ---------------------------------------------------------------- real instance and servers
class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", Hook.received
    server.shutdown()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Inbox:
        messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's naming
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(f"Subject: {msg['Subject']}\n{msg.get_content()}")
            return "250 OK"

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port, inbox.messages
    controller.stop()


STATE = {"passed": False}


@dg.asset(group_name="sales", owners=["team:sales"])
def orders() -> int:
    return 1


@dg.asset_check(asset=orders, blocking=True)
def orders_total_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=STATE["passed"], severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"observed": "-3", "threshold": ">= 0", "trend": "1 → 0 → -3"})


@dg.asset_check(asset=orders)
def orders_row_count_advisory() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=STATE["passed"], severity=dg.AssetCheckSeverity.WARN,
                               metadata={"observed": "850", "threshold": ">= 1000"})


@dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-01-01"))
def flaky_partition() -> None:
    raise RuntimeError("source unreachable")


DEFS = dg.Definitions(assets=[orders, flaky_partition], asset_checks=[orders_total_positive, orders_row_count_advisory])


@pytest.fixture
def setup(tmp_path, monkeypatch, webhook, smtp):
    url, hooks = webhook
    port, mails = smtp
    monkeypatch.setenv("TEST_HOOK_URL", url)
    cfg = parse_config({
        "cooldown_minutes": 60,
        "sinks": {"log": {"type": "log", "path": str(tmp_path / "alerts.jsonl")},
                  "hook": {"type": "webhook", "url": {"env": "TEST_HOOK_URL"}},
                  "mail": {"type": "email", "host": "127.0.0.1", "port": port, "from": "dataeng@localhost",
                           "to": ["oncall@localhost"]}},
        "routes": [{"match": {"severity": ["critical"]}, "sinks": ["hook", "log"]},
                   {"match": {"severity": ["warning"]}, "sinks": ["mail", "log"]},
                   {"match": {"severity": ["info"]}, "sinks": ["log"]}],
    })
    (tmp_path / "dagster").mkdir()
    # default SQLite storage; no compute-log capture (it tails files, slow for a step run in a thread)
    no_logs = {"compute_logs": {"module": "dagster._core.storage.noop_compute_log_manager",
                                "class": "NoOpComputeLogManager"}}
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster"), overrides=no_logs) as instance:
        STATE["passed"] = False
        yield instance, cfg, hooks, mails, tmp_path, url


def tick(instance, cfg, cursor, tmp_path, now):
    return evaluate_alerts(instance, DEFS.resolve_asset_graph(), cursor, cfg, Ledger(tmp_path / "ledger.jsonl"), now)


def materialize_orders(instance):
    return dg.materialize([orders, orders_total_positive, orders_row_count_advisory], instance=instance,
                          raise_on_error=False)


def test_sensor_tick_sends_each_failure_once_to_its_routed_sinks(setup):
    instance, cfg, hooks, mails, tmp, url = setup
    assert not materialize_orders(instance).success  # the blocking check fails the run
    t0 = time.time()
    alerts, delivery, cursor = tick(instance, cfg, {}, tmp, t0)
    assert sorted(a.check for a in alerts) == ["orders_row_count_advisory", "orders_total_positive"]
    assert len(hooks) == 1 and "orders_total_positive" in hooks[0]["text"] and hooks[0]["alert"]["observed"] == "-3"
    assert len(mails) == 1 and "orders_row_count_advisory" in mails[0] and "Current: 850 (threshold: >= 1000)" in mails[0]
    assert len((tmp / "alerts.jsonl").read_text().splitlines()) == 2
    assert not delivery.failed

    # a restart with the saved cursor: nothing again; with the cursor lost, the ledger still holds
    assert tick(instance, cfg, cursor, tmp, t0 + 1)[0] == []
    _, again, _ = tick(instance, cfg, {}, tmp, t0 + 2)
    assert again.sent == [] and len(hooks) == 1 and len(mails) == 1

    # failing again within the cooldown: suppressed; after it: one alert that counts what it held back
    materialize_orders(instance)
    assert tick(instance, cfg, cursor, tmp, t0 + 60)[0] == []
    cursor = tick(instance, cfg, cursor, tmp, t0 + 60)[2]
    materialize_orders(instance)
    alerts, _, cursor = tick(instance, cfg, cursor, tmp, t0 + 2 * HOUR)
    assert {a.suppressed_since_last for a in alerts} == {1} and len(hooks) == 2 and len(mails) == 2

    # recovery: an info notice to the log only
    STATE["passed"] = True
    assert materialize_orders(instance).success
    alerts, _, cursor = tick(instance, cfg, cursor, tmp, t0 + 3 * HOUR)
    assert {a.kind for a in alerts} == {"check_recovered"} and len(alerts) == 2
    assert len(hooks) == 2 and len(mails) == 2
    assert len((tmp / "alerts.jsonl").read_text().splitlines()) == 6


def test_failed_partitioned_run_alerts_once_and_a_gated_run_does_not_double(setup):
    instance, cfg, hooks, mails, tmp, url = setup
    materialize_orders(instance)  # fails on its blocking check: the check alert covers it
    result = dg.materialize([flaky_partition], instance=instance, partition_key="2024-01-05", raise_on_error=False)
    assert not result.success
    alerts, _, cursor = tick(instance, cfg, {}, tmp, time.time())
    runs = [a for a in alerts if a.kind == "run_failed"]
    assert len(runs) == 1 and runs[0].partitions == "2024-01-05" and runs[0].run_id == result.run_id
    assert tick(instance, cfg, cursor, tmp, time.time())[0] == []


def test_a_failing_sink_is_retried_next_tick_without_resending_the_others(setup, monkeypatch):
    instance, cfg, hooks, mails, tmp, url = setup
    monkeypatch.setenv("TEST_HOOK_URL", f"http://127.0.0.1:{free_port()}/down")
    materialize_orders(instance)
    alerts, delivery, cursor = tick(instance, cfg, {}, tmp, time.time())
    assert [s for _, s, _ in delivery.failed] == ["hook"] and len(mails) == 1
    monkeypatch.setenv("TEST_HOOK_URL", url)  # the receiver is back
    _, delivery, _ = tick(instance, cfg, cursor, tmp, time.time())
    assert [s for _, s in delivery.sent] == ["hook"] and len(hooks) == 1 and len(mails) == 1


GATE = threading.Event()


@dg.asset
def slow() -> int:
    GATE.wait(timeout=60)
    return 1


@dg.asset_check(asset=slow)
def slow_check() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, metadata={"observed": "1", "threshold": "0"})


def test_cursor_waits_for_a_planned_evaluation_of_a_running_run(setup):
    instance, cfg, hooks, mails, tmp, url = setup
    graph = dg.Definitions(assets=[slow], asset_checks=[slow_check]).resolve_asset_graph()
    GATE.clear()
    worker = threading.Thread(target=lambda: dg.materialize([slow, slow_check], instance=instance, raise_on_error=False))
    worker.start()
    key = dg.AssetCheckKey(slow.key, "slow_check")
    deadline = time.time() + 30
    while not instance.event_log_storage.get_asset_check_execution_history(key, limit=1) and time.time() < deadline:
        time.sleep(0.05)  # the run plans its check when it starts
    [planned] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    assert planned.status.value == "PLANNED"
    alerts, _, cursor = evaluate_alerts(instance, graph, {}, cfg, Ledger(tmp / "ledger.jsonl"), time.time())
    assert alerts == [] and cursor["checks"]["slow:slow_check"] == 0  # not past the running evaluation
    GATE.set()
    worker.join(timeout=60)
    alerts, _, cursor = evaluate_alerts(instance, graph, cursor, cfg, Ledger(tmp / "ledger.jsonl"), time.time())
    assert [a.check for a in alerts] == ["slow_check"] and cursor["checks"]["slow:slow_check"] == planned.id
