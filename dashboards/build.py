"""Grafana dashboards as code: builds dashboards/grafana/*.json and the provisioning files.

Owns the three dashboards (cutover overview, per-route drill-down, proxy health), the Prometheus datasource uid
they all use, and the provisioning YAML. Plain dicts in Grafana's dashboard JSON model (schemaVersion 39), so the
runtime needs no SDK; tests check the committed JSON equals what this module builds and validate the structure
(tests/dashboards/test_grafana.py), validate it against Grafana's dashboard schema as generated into the official
grafana-foundation-sdk models (tests/dashboards/test_grafana_schema.py), and run every panel query against a real
Prometheus.

Run ``python dashboards/build.py`` after editing, and commit the regenerated files. May import: stdlib only.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
GRAFANA_DIR = HERE / "grafana"
DATASOURCE_UID = "parity-prometheus"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39
ROUTE_VAR = '$route'

Panel = dict[str, Any]


def _target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": DATASOURCE, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if instant:
        target["instant"] = True
        target["range"] = False
    return target


def _panel(kind: str, title: str, targets: list[dict[str, Any]], *, w: int, h: int, unit: str = "short",
           description: str = "", **extra: Any) -> Panel:
    panel: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    panel.update(extra)
    return panel


def _layout(panels: list[Panel]) -> list[Panel]:
    """Flow panels left to right, wrapping at 24 columns, and number them 1..n."""
    x = y = row_h = 0
    for index, panel in enumerate(panels, start=1):
        w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        panel["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        panel["id"] = index
        x += w
        row_h = max(row_h, h)
    return panels


def _dashboard(uid: str, title: str, panels: list[Panel], *, tags: list[str], templating: list[dict[str, Any]],
               description: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["parity", *tags],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": {"list": templating},
        "annotations": {"list": []},
        "links": [{"title": "parity dashboards", "type": "dashboards", "tags": ["parity"], "asDropdown": True}],
        "panels": _layout(panels),
    }


_VERDICT_MAPPINGS = [
    {"type": "value", "options": {
        "0": {"text": "PASS", "color": "green", "index": 0},
        "1": {"text": "FAIL", "color": "red", "index": 1},
        "2": {"text": "INCONCLUSIVE", "color": "yellow", "index": 2},
    }},
]

_RATIO_THRESHOLDS = {"mode": "absolute", "steps": [
    {"color": "red", "value": None}, {"color": "yellow", "value": 0.95}, {"color": "green", "value": 0.99},
]}


def cutover_overview() -> dict[str, Any]:
    verdict = _panel(
        "stat", "Live verdict (worst route)",
        [_target("max(route:parity_live_verdict:30m == 1) or max(route:parity_live_verdict:30m)", "verdict")],
        w=6, h=5,
        description="Live estimate from Prometheus: 0 pass, 1 fail, 2 inconclusive (<50 compared pairs in 30m). "
                    "The authoritative verdict is `parity gate` over the parity database.",
        fieldConfig={"defaults": {"unit": "none", "mappings": _VERDICT_MAPPINGS,
                                  "thresholds": {"mode": "absolute", "steps": [
                                      {"color": "green", "value": None}, {"color": "red", "value": 1},
                                      {"color": "yellow", "value": 2}]}}, "overrides": []},
        options={"colorMode": "background", "reduceOptions": {"calcs": ["lastNotNull"]}},
    )
    parity = _panel("stat", "Parity (all routes, 5m)", [_target("parity:parity_ratio:rate5m", "parity")],
                    w=6, h=5, unit="percentunit",
                    fieldConfig={"defaults": {"unit": "percentunit", "decimals": 2, "thresholds": _RATIO_THRESHOLDS},
                                 "overrides": []},
                    options={"colorMode": "value", "reduceOptions": {"calcs": ["lastNotNull"]}})
    pairs = _panel("stat", "Compared pairs/s", [_target('sum(route_outcome:parity_pairs:rate5m)', "pairs/s")],
                   w=6, h=5, unit="reqps")
    drops = _panel("stat", "Mirror drop ratio (5m)", [_target("parity:drop_ratio:rate5m", "dropped")],
                   w=6, h=5, unit="percentunit")
    by_family = _panel("bargauge", "Parity by method group", [_target("family:parity_ratio:rate5m", "{{family}}",
                                                                      instant=True)],
                       w=12, h=8, unit="percentunit",
                       description="Method group = route up to the first '.', or the first path segment for HTTP.",
                       fieldConfig={"defaults": {"unit": "percentunit", "min": 0, "max": 1,
                                                 "thresholds": _RATIO_THRESHOLDS}, "overrides": []},
                       options={"orientation": "horizontal", "displayMode": "gradient"})
    verdicts = _panel("table", "Live verdict by route", [_target("route:parity_live_verdict:30m", "{{route}}",
                                                                 instant=True)],
                      w=12, h=8, unit="none",
                      fieldConfig={"defaults": {"unit": "none", "mappings": _VERDICT_MAPPINGS}, "overrides": []},
                      transformations=[{"id": "labelsToFields", "options": {}}])
    mismatch = _panel("timeseries", "Mismatch rate by route", [_target("route:parity_mismatch_rate:rate5m",
                                                                       "{{route}}")],
                      w=12, h=8, unit="percentunit")
    latency = _panel("timeseries", "Latency ratio candidate/legacy", [
        _target("route:parity_latency_ratio:p50_rate5m", "p50 {{route}}"),
        _target("route:parity_latency_ratio:p99_rate5m", "p99 {{route}}"),
    ], w=12, h=8, unit="none", description="Same quantile on both legs, divided. 1.0 = equal; the gate's bound is 1.5.")
    dropped = _panel("timeseries", "Drops by stage and reason",
                     [_target("stage_reason:parity_dropped:rate5m", "{{stage}} {{reason}}")], w=12, h=8, unit="ops")
    errors = _panel("timeseries", "Candidate errors", [
        _target("sum by (kind) (rate(parity_candidate_errors_total[$__rate_interval]))", "{{kind}}"),
        _target("parity:error_ratio_delta:rate5m", "error ratio delta (candidate - legacy)"),
    ], w=12, h=8, unit="short")
    return _dashboard(
        "parity-cutover", "Parity: cutover overview",
        [verdict, parity, pairs, drops, by_family, verdicts, mismatch, latency, dropped, errors],
        tags=["cutover"], templating=[],
        description="Is the candidate at parity with the legacy? Live view from the shadow proxy's metrics.",
    )


def method_drilldown() -> dict[str, Any]:
    route = f'route=~"{ROUTE_VAR}"'
    panels = [
        _panel("stat", "Parity (5m)", [_target(f"route:parity_ratio:rate5m{{{route}}}", "{{route}}")],
               w=8, h=5, unit="percentunit",
               fieldConfig={"defaults": {"unit": "percentunit", "decimals": 2, "thresholds": _RATIO_THRESHOLDS},
                            "overrides": []}),
        _panel("stat", "Rolling parity (last 1000 pairs)", [_target(f"parity_ratio{{{route}}}", "{{route}}")],
               w=8, h=5, unit="percentunit"),
        _panel("stat", "Live verdict", [_target(f"route:parity_live_verdict:30m{{{route}}}", "{{route}}")],
               w=8, h=5, unit="none",
               fieldConfig={"defaults": {"unit": "none", "mappings": _VERDICT_MAPPINGS}, "overrides": []}),
        _panel("timeseries", "Pairs by outcome",
               [_target(f"sum by (route, outcome) (rate(parity_pairs_total{{{route}}}[$__rate_interval]))",
                        "{{route}} {{outcome}}")], w=12, h=8, unit="reqps"),
        _panel("timeseries", "Requests by leg and outcome",
               [_target(f"sum by (leg, outcome) (rate(parity_requests_total{{{route}}}[$__rate_interval]))",
                        "{{leg}} {{outcome}}")], w=12, h=8, unit="reqps"),
        _panel("timeseries", "Latency p50 / p99 per leg", [
            _target(f"leg_route:parity_latency_seconds:p50_rate5m{{{route}}}", "p50 {{leg}} {{route}}"),
            _target(f"leg_route:parity_latency_seconds:p99_rate5m{{{route}}}", "p99 {{leg}} {{route}}"),
        ], w=12, h=8, unit="s"),
        _panel("timeseries", "Latency ratio candidate/legacy", [
            _target(f"route:parity_latency_ratio:p50_rate5m{{{route}}}", "p50 {{route}}"),
            _target(f"route:parity_latency_ratio:p99_rate5m{{{route}}}", "p99 {{route}}"),
        ], w=12, h=8, unit="none"),
        _panel("timeseries", "Mismatch rate", [_target(f"route:parity_mismatch_rate:rate5m{{{route}}}", "{{route}}")],
               w=12, h=8, unit="percentunit"),
        _panel("timeseries", "Side-effect policy decisions",
               [_target(f"sum by (route, decision) (rate(parity_policy_decisions_total{{{route}}}[$__rate_interval]))",
                        "{{route}} {{decision}}")], w=12, h=8, unit="ops"),
    ]
    templating = [{
        "name": "route",
        "label": "route",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(parity_pairs_total, route)", "refId": "route"},
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }]
    return _dashboard("parity-method", "Parity: per-route drill-down", panels, tags=["drilldown"],
                      templating=templating,
                      description="One route (WS method or HTTP route template) at a time: parity, latency, policy.")


def proxy_health() -> dict[str, Any]:
    panels = [
        _panel("stat", "Scrape up", [_target('up{job="parity-shadow"}', "{{instance}}")], w=6, h=5, unit="none"),
        _panel("stat", "Mode", [_target("parity_mode == 1", "{{mode}}")], w=6, h=5, unit="none",
               options={"textMode": "name", "reduceOptions": {"calcs": ["lastNotNull"]}}),
        _panel("stat", "Client connections", [_target("sum by (protocol) (parity_client_connections)",
                                                      "{{protocol}}")], w=6, h=5),
        _panel("stat", "Proxy RSS", [_target("parity_proxy_rss_bytes", "rss")], w=6, h=5, unit="bytes"),
        _panel("timeseries", "Queue depth", [_target("parity_queue_depth", "{{queue}}")], w=12, h=8),
        _panel("timeseries", "Frames/s by leg and direction",
               [_target("sum by (leg, direction) (rate(parity_frames_total[$__rate_interval]))",
                        "{{leg}} {{direction}}")], w=12, h=8, unit="ops"),
        _panel("timeseries", "Requests/s by leg and protocol",
               [_target("sum by (leg, protocol) (rate(parity_requests_total[$__rate_interval]))",
                        "{{leg}} {{protocol}}")], w=12, h=8, unit="reqps"),
        _panel("timeseries", "Dropped/s by stage and reason",
               [_target("sum by (stage, reason) (rate(parity_dropped_total[$__rate_interval]))",
                        "{{stage}} {{reason}}")], w=12, h=8, unit="ops"),
        _panel("timeseries", "Leg errors/s", [
            _target("sum by (kind) (rate(parity_candidate_errors_total[$__rate_interval]))", "candidate {{kind}}"),
            _target("sum by (kind) (rate(parity_legacy_errors_total[$__rate_interval])) or vector(0)",
                    "legacy {{kind}}"),
        ], w=12, h=8, unit="ops"),
        _panel("timeseries", "Stage errors/s",
               [_target("sum by (stage) (rate(parity_stage_errors_total[$__rate_interval])) or vector(0)",
                        "{{stage}}")], w=12, h=8, unit="ops"),
    ]
    return _dashboard("parity-proxy", "Parity: shadow proxy health", panels, tags=["proxy"], templating=[],
                      description="Is the instrument itself healthy? Scrape, queues, drops, errors, memory.")


DASHBOARDS = {
    "cutover-overview.json": cutover_overview,
    "method-drilldown.json": method_drilldown,
    "proxy-health.json": proxy_health,
}

DATASOURCES_YAML = f"""\
# Grafana datasource provisioning: the Prometheus that scrapes the shadow proxy (see README, dashboards/).
apiVersion: 1
datasources:
  - name: parity-prometheus
    uid: {DATASOURCE_UID}
    type: prometheus
    access: proxy
    url: ${{PARITY_PROMETHEUS_URL:-http://127.0.0.1:9090}}
    isDefault: true
    jsonData:
      timeInterval: 5s
"""

DASHBOARDS_YAML = """\
# Grafana dashboard provisioning: load every JSON file in dashboards/grafana into the "Parity" folder.
# Set PARITY_DASHBOARDS_DIR to the absolute path of dashboards/grafana in this checkout.
apiVersion: 1
providers:
  - name: parity
    folder: Parity
    type: file
    disableDeletion: false
    allowUiUpdates: false
    options:
      path: ${PARITY_DASHBOARDS_DIR}
      foldersFromFilesStructure: false
"""


def render() -> dict[Path, str]:
    """Every generated file, path -> text."""
    out = {GRAFANA_DIR / name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}
    out[GRAFANA_DIR / "provisioning" / "datasources" / "parity.yml"] = DATASOURCES_YAML
    out[GRAFANA_DIR / "provisioning" / "dashboards" / "parity.yml"] = DASHBOARDS_YAML
    return out


def main() -> int:
    for path, text in render().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        sys.stdout.write(f"wrote {path.relative_to(HERE.parent)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
