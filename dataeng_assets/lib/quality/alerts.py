"""Alerting on check results: what to say, to whom, and exactly once.

Open-source Dagster has no alerting on asset checks (a failed check does not fail the run, so a
run-failure sensor never hears of it). Here a sensor reads each check's execution history with
a per-check cursor (`collect`), a pure state machine decides what to send (`decide`: one alert
per failed evaluation, a cooldown per check, a recovery notice when it passes again), routing
rules pick sinks by severity, group, owner or asset (`route`), and a delivery ledger in the
data home makes sending idempotent even if a tick is retried or the cursor is lost.

Configuration (`DATAENG_ALERTS_CONFIG`, default `<data home>/alerting.yaml`; without a file:
log-only to `<data home>/alerts/alerts.jsonl`):
```
cooldown_minutes: 360
ui_url: http://127.0.0.1:3000
sinks:
  log:    {type: log}                                          # path: alerts/alerts.jsonl
  slack:  {type: webhook, url: {env: DATAENG_ALERT_WEBHOOK_URL}}
  oncall: {type: email, host: smtp.example.com, port: 587, starttls: true,
           from: dataeng@example.com, to: [oncall@example.com],
           username: {env: DATAENG_SMTP_USER}, password: {env: DATAENG_SMTP_PASSWORD}}
routes:                         # every matching route's sinks get the alert
  - match: {severity: [critical]}
    sinks: [oncall, log]
  - match: {severity: [warning, info], group: [user_analytics]}
    sinks: [slack, log]
```
Secrets are `{env: NAME}` references read through `dagster.EnvVar` at send time; they never
appear in the file, the alert, logs or metadata.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import smtplib
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from dataeng_assets.lib import env

SEVERITIES = ("critical", "warning", "info")
DEFAULT_COOLDOWN_MIN = 360  # a check failing every hour pages at most every 6 hours
DEFAULT_UI_URL = "http://127.0.0.1:3000"
SINK_TYPES = ("log", "webhook", "email")
MATCH_KEYS = ("severity", "group", "owner", "asset_prefix", "kind")
SECRET_KEYS = {"url", "username", "password"}  # a webhook URL carries its token


class AlertConfigError(ValueError):
    pass


# ---------------------------------------------------------------- data
@dataclass(frozen=True)
class Evaluation:
    """One finished check evaluation, as read from the instance."""

    check: str  # "asset/key:check_name"
    asset: str
    check_name: str
    record_id: int
    run_id: str
    passed: bool
    severity: str  # critical | warning
    timestamp: float
    metadata: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None
    owners: tuple[str, ...] = ()


@dataclass
class Alert:
    id: str  # idempotency key: one per failed evaluation, recovery or failed run
    kind: str  # check_failed | check_recovered | run_failed
    severity: str
    title: str
    asset: str | None
    check: str | None
    observed: str | None
    threshold: str | None
    partitions: str | None
    trend: str | None
    link: str
    run_id: str
    created_at: str
    group: str | None = None
    owners: list[str] = field(default_factory=list)
    details: Any = None
    suppressed_since_last: int = 0

    def text(self) -> str:
        """The seed's alert layout, plain text (Slack renders it as is)."""
        icon = {"critical": "🚨", "warning": "⚠️", "info": "✅"}[self.severity]
        lines = [f"{icon} Data Quality Alert: {self.severity.capitalize()} — {self.title}"]
        if self.asset:
            lines.append(f"Table: {self.asset}")
        if self.check:
            lines.append(f"Check: {self.check}")
        if self.observed is not None:
            lines.append(f"Current: {self.observed} (threshold: {self.threshold})")
        if self.partitions:
            lines.append(f"Partition: {self.partitions}")
        if self.trend:
            lines.append(f"Recent trend: {self.trend}")
        if self.suppressed_since_last:
            lines.append(f"Also failed {self.suppressed_since_last} more time(s) during the cooldown")
        lines.append(f"Link: {self.link}")
        return "\n".join(lines)


@dataclass
class CheckState:
    failing: bool = False
    last_alert: float | None = None
    suppressed: int = 0


# ---------------------------------------------------------------- config
@dataclass
class Route:
    match: dict[str, list[str]]
    sinks: list[str]


@dataclass
class AlertConfig:
    sinks: dict[str, dict]
    routes: list[Route]
    cooldown_s: float = DEFAULT_COOLDOWN_MIN * 60
    ui_url: str = DEFAULT_UI_URL
    source: str = "<default>"


def default_config() -> AlertConfig:
    return AlertConfig({"log": {"type": "log"}}, [Route({}, ["log"])])


def config_path() -> Path:
    return Path(os.environ.get("DATAENG_ALERTS_CONFIG") or env.data_home() / "alerting.yaml")


def load_config(path: Path | None = None) -> AlertConfig:
    path = path or config_path()
    if not path.exists():
        if os.environ.get("DATAENG_ALERTS_CONFIG"):
            raise AlertConfigError(f"DATAENG_ALERTS_CONFIG={path}: no such file")
        cfg = default_config()
    else:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise AlertConfigError(f"{path}: not valid YAML: {e}") from None
        cfg = parse_config(doc, str(path))
    cfg.ui_url = os.environ.get("DATAENG_UI_URL") or cfg.ui_url
    return cfg


def parse_config(doc: Mapping[str, Any], source: str = "<config>") -> AlertConfig:
    unknown = set(doc) - {"sinks", "routes", "cooldown_minutes", "ui_url"}
    if unknown:
        raise AlertConfigError(f"{source}: unknown key(s) {sorted(unknown)}")
    sinks = dict(doc.get("sinks") or {"log": {"type": "log"}})
    for name, sink in sinks.items():
        if not isinstance(sink, dict) or sink.get("type") not in SINK_TYPES:
            raise AlertConfigError(f"{source}: sink {name}: type is one of {', '.join(SINK_TYPES)}")
        needed = {"webhook": ["url"], "email": ["host", "from", "to"], "log": []}[sink["type"]]
        missing = [k for k in needed if k not in sink]
        if missing:
            raise AlertConfigError(f"{source}: sink {name}: missing {', '.join(missing)}")
        for key in SECRET_KEYS & set(sink):
            value = sink[key]
            if not isinstance(value, dict) or set(value) != {"env"}:
                raise AlertConfigError(f"{source}: sink {name}: give {key} as {{env: VARIABLE}}, never in the file")
    routes = []
    for i, raw in enumerate(doc.get("routes") or [{"sinks": list(sinks)}], start=1):
        match = {k: v if isinstance(v, list) else [v] for k, v in (raw.get("match") or {}).items()}
        bad = set(match) - set(MATCH_KEYS)
        if bad:
            raise AlertConfigError(f"{source}: route {i}: unknown match key(s) {sorted(bad)}; use {', '.join(MATCH_KEYS)}")
        for s in match.get("severity", []):
            if s not in SEVERITIES:
                raise AlertConfigError(f"{source}: route {i}: severity {s!r} is not one of {', '.join(SEVERITIES)}")
        unknown_sinks = [s for s in raw.get("sinks") or [] if s not in sinks]
        if unknown_sinks or not raw.get("sinks"):
            raise AlertConfigError(f"{source}: route {i}: sinks {unknown_sinks or '[]'} not defined under sinks")
        routes.append(Route(match, list(raw["sinks"])))
    cooldown = float(doc.get("cooldown_minutes", DEFAULT_COOLDOWN_MIN)) * 60
    return AlertConfig(sinks, routes, cooldown, doc.get("ui_url") or DEFAULT_UI_URL, source)


# ---------------------------------------------------------------- pure decisions
def _meta(md: Mapping[str, Any], key: str) -> str | None:
    v = md.get(key)
    return None if v is None else str(v)


def asset_link(ui_url: str, asset: str) -> str:
    return f"{ui_url.rstrip('/')}/assets/{quote(asset)}?view=checks"


def decide(
    evaluations: Iterable[Evaluation],
    state: dict[str, CheckState],
    cooldown_s: float,
    ui_url: str,
    now: float,
) -> list[Alert]:
    """Alerts for new evaluations (oldest first); updates `state` in place."""
    alerts = []
    for ev in sorted(evaluations, key=lambda e: (e.timestamp, e.record_id)):
        st = state.setdefault(ev.check, CheckState())
        created = dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat()
        if ev.passed:
            if st.failing:
                alerts.append(Alert(
                    f"{ev.check}#{ev.record_id}", "check_recovered", "info", f"{ev.check_name} passes again",
                    ev.asset, ev.check_name, _meta(ev.metadata, "observed"), _meta(ev.metadata, "threshold"),
                    _meta(ev.metadata, "partitions"), None, asset_link(ui_url, ev.asset), ev.run_id, created,
                    ev.group, list(ev.owners),
                ))
            st.failing, st.suppressed = False, 0
            continue
        if st.failing and st.last_alert is not None and now - st.last_alert < cooldown_s:
            st.suppressed += 1
            continue
        alerts.append(Alert(
            f"{ev.check}#{ev.record_id}", "check_failed", ev.severity, f"{ev.check_name} failed on {ev.asset}",
            ev.asset, ev.check_name, _meta(ev.metadata, "observed"), _meta(ev.metadata, "threshold"),
            _meta(ev.metadata, "partitions"), _meta(ev.metadata, "trend"), asset_link(ui_url, ev.asset), ev.run_id,
            created, ev.group, list(ev.owners), ev.metadata.get("failures"), st.suppressed,
        ))
        st.failing, st.last_alert, st.suppressed = True, now, 0
    return alerts


def run_failure_alert(run_id: str, job: str, partitions: str | None, error: str | None, ui_url: str, now: float) -> Alert:
    created = dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat()
    return Alert(f"run:{run_id}", "run_failed", "critical", f"run of {job} failed", None, None, None, None,
                 partitions, None, f"{ui_url.rstrip('/')}/runs/{run_id}", run_id, created, details=error)


def route(alert: Alert, routes: Sequence[Route]) -> list[str]:
    """The sinks of every route whose match holds (all given keys must match)."""
    out: list[str] = []
    for r in routes:
        m = r.match
        if "severity" in m and alert.severity not in m["severity"]:
            continue
        if "kind" in m and alert.kind not in m["kind"]:
            continue
        if "group" in m and alert.group not in m["group"]:
            continue
        if "owner" in m and not set(alert.owners) & set(m["owner"]):
            continue
        if "asset_prefix" in m and not any((alert.asset or "").startswith(p) for p in m["asset_prefix"]):
            continue
        out.extend(s for s in r.sinks if s not in out)
    return out


# ---------------------------------------------------------------- delivery
def alerts_dir() -> Path:
    return env.data_home() / "alerts"


class Ledger:
    """Alert ids already delivered (per sink): a retried tick or a lost cursor sends nothing twice."""

    def __init__(self, path: Path | None = None):
        self.path = path or alerts_dir() / "ledger.jsonl"
        self.sent: set[tuple[str, str]] = set()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    rec = json.loads(line)
                    self.sent.add((rec["id"], rec["sink"]))

    def mark(self, alert_id: str, sink: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"id": alert_id, "sink": sink}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.sent.add((alert_id, sink))


def _secret(value: Any) -> str | None:
    if isinstance(value, dict):
        import dagster as dg

        return dg.EnvVar(value["env"]).get_value()
    return value


def send(alert: Alert, sink_name: str, sink: Mapping[str, Any]) -> None:
    kind = sink["type"]
    if kind == "log":
        path = Path(sink.get("path") or alerts_dir() / "alerts.jsonl")
        path = path if path.is_absolute() else env.data_home() / path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(alert), default=str) + "\n")
    elif kind == "webhook":
        url = _secret(sink["url"])
        if not url:
            raise AlertConfigError(f"sink {sink_name}: the webhook URL variable is not set")
        body = json.dumps({"text": alert.text(), "alert": asdict(alert)}, default=str).encode()
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=float(sink.get("timeout_s", 10))) as resp:  # noqa: S310
            resp.read()
    elif kind == "email":
        msg = EmailMessage()
        msg["Subject"] = f"[{alert.severity}] {alert.title}"
        msg["From"] = sink["from"]
        msg["To"] = ", ".join(sink["to"] if isinstance(sink["to"], list) else [sink["to"]])
        msg.set_content(alert.text())
        with smtplib.SMTP(sink["host"], int(sink.get("port", 25)), timeout=float(sink.get("timeout_s", 10))) as smtp:
            if sink.get("starttls"):
                smtp.starttls()
            user, password = _secret(sink.get("username")), _secret(sink.get("password"))
            if user:
                smtp.login(user, password or "")
            smtp.send_message(msg)


@dataclass
class Delivery:
    sent: list[tuple[str, str]] = field(default_factory=list)  # (alert id, sink)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (alert id, sink, error)


def deliver(alerts: Sequence[Alert], config: AlertConfig, ledger: Ledger) -> Delivery:
    """Each alert to each routed sink once; a failing sink is reported, the others still get it."""
    out = Delivery()
    for alert in alerts:
        for name in route(alert, config.routes):
            if (alert.id, name) in ledger.sent:
                continue
            try:
                send(alert, name, config.sinks[name])
            except Exception as e:  # one broken sink must not silence the others
                out.failed.append((alert.id, name, f"{type(e).__name__}: {e}"))
                continue
            ledger.mark(alert.id, name)
            out.sent.append((alert.id, name))
    return out
