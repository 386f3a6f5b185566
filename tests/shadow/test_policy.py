"""Side-effect policy: profile defaults, dry-run, overrides, and every decision counted."""

from __future__ import annotations

from shadow.metrics import Metrics
from shadow.policy import MIRROR, RECORD_ONLY, SKIP, Policy


def test_profile_defaults() -> None:
    p = Policy()
    for m in ("health", "status", "models.list", "sessions.list", "config.get", "connect"):
        assert p.ws(m)[0] == MIRROR, m
    for m in ("send", "agent", "chat.send", "sessions.send", "config.set", "config.apply", "config.patch"):
        assert p.ws(m)[0] == SKIP, m
    assert p.http("GET", "/healthz") == (MIRROR, "GET /healthz")
    assert p.http("POST", "/hooks/agent") == (SKIP, "POST /hooks/agent")
    assert p.http("POST", "/tools/invoke")[0] == SKIP


def test_dry_run_and_overrides() -> None:
    assert Policy(dry_run=True).ws("chat.send")[0] == MIRROR
    p = Policy({"sessions.*": RECORD_ONLY, "sessions.list": MIRROR, "GET /healthz": SKIP})
    assert p.ws("sessions.send")[0] == RECORD_ONLY
    assert p.ws("sessions.list")[0] == MIRROR
    assert p.http("GET", "/healthz")[0] == SKIP


def test_labels_are_bounded_and_decisions_counted() -> None:
    m = Metrics()
    p = Policy(metrics=m)
    for i in range(50):
        p.ws(f"made.up.{i}")
        p.http("GET", f"/api/thing/{i}?id={i}")
    routes = {s.labels["route"] for mm in m.registry.collect() for s in mm.samples
              if s.name == "parity_policy_decisions_total"}
    assert routes == {"other", "* /api/*"}
    assert m.value("parity_policy_decisions_total", {"route": "other", "decision": MIRROR}) == 50
