"""Grafana dashboards: committed JSON equals the builder's output, and the dashboards are structurally valid.

Validation (project-owned; the schema check proper is test_grafana_schema.py): required keys and types, unique panel ids, gridPos inside 24 columns and
no two panels overlapping, unique refIds, one datasource uid everywhere and equal to the provisioned one, every
template variable used is defined, every metric a query names exists in shadow/metrics.py or rules.yml.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from shadow.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "dashboards" / "grafana"
PANEL_TYPES = {"stat", "timeseries", "bargauge", "table", "gauge", "text"}
PROMQL_WORDS = {
    "sum", "by", "rate", "max", "min", "or", "and", "on", "ignoring", "vector", "histogram_quantile", "increase",
    "label_replace", "label_values", "avg", "count", "without", "le",
}


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("parity_dashboards_build", ROOT / "dashboards" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def known_metrics() -> set[str]:
    """Series names the proxy exports (from the real Metrics class) plus the recording rules' names."""
    names: set[str] = {"up"}
    metrics = Metrics(CollectorRegistry())
    for family in metrics.registry.collect():
        base = family.name
        if family.type == "counter":
            names.add(base + "_total")
        elif family.type == "histogram":
            names.update({base + "_bucket", base + "_sum", base + "_count"})
        else:
            names.add(base)
    rules = yaml.safe_load((ROOT / "dashboards" / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def provisioned_uid() -> str:
    data = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "parity.yml").read_text())
    (source,) = data["datasources"]
    assert source["type"] == "prometheus"
    return str(source["uid"])


_METRIC_RE = re.compile(r"(?<![\w$\"'{])([a-zA-Z_][a-zA-Z0-9_:]*)\s*(?=[{\[)\s]|$|==|>|<|/|\*|-)")
_STRINGS_RE = re.compile(r'"[^"]*"')
_GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    stripped = _GROUPING_RE.sub(" ", _STRINGS_RE.sub('""', expr))
    stripped = re.sub(r"\{[^}]*\}", "{}", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "[]", stripped)
    return {m for m in _METRIC_RE.findall(stripped) if m not in PROMQL_WORDS and not m[0].isdigit()}


def validate(dashboard: dict[str, Any], *, metrics: set[str], uid: str) -> list[str]:
    """Every problem found, as 'where: what' strings (empty when valid)."""
    errors: list[str] = []
    title = dashboard.get("title", "<untitled>")
    for key, kind in (("uid", str), ("title", str), ("panels", list), ("schemaVersion", int), ("templating", dict)):
        if not isinstance(dashboard.get(key), kind):
            errors.append(f"{title}: {key} missing or not {kind.__name__}")
    if errors:
        return errors
    variables = {v["name"] for v in dashboard["templating"].get("list", [])}
    for var in dashboard["templating"].get("list", []):
        if var.get("datasource", {}).get("uid", uid) != uid:
            errors.append(f"{title}: variable {var['name']} uses datasource {var['datasource']}")
    ids: set[int] = set()
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard["panels"]:
        pid = panel.get("id")
        where = f"{title}: panel {pid} {panel.get('title')!r}"
        if not isinstance(pid, int) or pid in ids:
            errors.append(f"{where}: id missing or duplicated")
        ids.add(pid)
        if panel.get("type") not in PANEL_TYPES:
            errors.append(f"{where}: unknown panel type {panel.get('type')!r}")
        grid = panel.get("gridPos", {})
        x, y, w, h = (grid.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)):
            errors.append(f"{where}: gridPos needs integer x, y, w, h")
            continue
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
            errors.append(f"{where}: gridPos {grid} outside the 24-column grid")
        for cx in range(x, x + w):
            for cy in range(y, y + h):
                if (cx, cy) in cells:
                    errors.append(f"{where}: overlaps panel {cells[(cx, cy)]} at ({cx},{cy})")
                    break
                cells[(cx, cy)] = pid
            else:
                continue
            break
        if panel.get("datasource", {}).get("uid") != uid:
            errors.append(f"{where}: datasource {panel.get('datasource')} is not uid {uid}")
        targets = panel.get("targets") or []
        if not targets:
            errors.append(f"{where}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            errors.append(f"{where}: duplicate refId in {refs}")
        for target in targets:
            if target.get("datasource", {}).get("uid") != uid:
                errors.append(f"{where}: target {target.get('refId')} datasource is not uid {uid}")
            expr = target.get("expr", "")
            if not expr:
                errors.append(f"{where}: target {target.get('refId')} has no expr")
            for var in re.findall(r"\$(\w+)", expr):
                if not var.startswith("__") and var not in variables:
                    errors.append(f"{where}: uses undefined variable ${var}")
            for name in metric_names(expr):
                if name not in metrics:
                    errors.append(f"{where}: unknown metric {name!r} in {expr!r}")
    return errors


@pytest.fixture(scope="module")
def builder() -> ModuleType:
    return load_builder()


@pytest.fixture(scope="module")
def dashboards(builder: ModuleType) -> dict[str, dict[str, Any]]:
    return {name: json.loads((GRAFANA / name).read_text()) for name in builder.DASHBOARDS}


def test_committed_files_match_builder(builder: ModuleType) -> None:
    stale = [str(p.relative_to(ROOT)) for p, text in builder.render().items() if not p.exists() or p.read_text() != text]
    assert not stale, f"regenerate with `python dashboards/build.py`: {stale}"


def test_three_dashboards_with_the_required_panels(dashboards: dict[str, dict[str, Any]]) -> None:
    titles = {name: {p["title"] for p in d["panels"]} for name, d in dashboards.items()}
    overview = titles["cutover-overview.json"]
    for needed in ("Live verdict (worst route)", "Parity by method group", "Mismatch rate by route",
                   "Latency ratio candidate/legacy", "Drops by stage and reason", "Candidate errors"):
        assert needed in overview
    drill = dashboards["method-drilldown.json"]
    assert [v["name"] for v in drill["templating"]["list"]] == ["route"]
    assert all("$route" in t["expr"] for p in drill["panels"] for t in p["targets"])
    assert "Queue depth" in titles["proxy-health.json"]
    assert len({d["uid"] for d in dashboards.values()}) == 3


@pytest.mark.parametrize("name", ["cutover-overview.json", "method-drilldown.json", "proxy-health.json"])
def test_dashboard_is_valid(dashboards: dict[str, dict[str, Any]], name: str) -> None:
    assert validate(dashboards[name], metrics=known_metrics(), uid=provisioned_uid()) == []


def test_validator_catches_broken_dashboards(dashboards: dict[str, dict[str, Any]]) -> None:
    bad = copy.deepcopy(dashboards["cutover-overview.json"])
    bad["panels"][1]["id"] = bad["panels"][0]["id"]
    bad["panels"][2]["gridPos"]["x"] = 20
    bad["panels"][3]["targets"][0]["expr"] = "rate(parity_no_such_metric_total[5m])"
    bad["panels"][4]["datasource"] = {"type": "prometheus", "uid": "elsewhere"}
    bad["panels"][5]["targets"][0]["expr"] = 'route:parity_ratio:rate5m{route=~"$nope"}'
    problems = "\n".join(validate(bad, metrics=known_metrics(), uid=provisioned_uid()))
    assert "id missing or duplicated" in problems
    assert "outside the 24-column grid" in problems
    assert "overlaps panel" in problems
    assert "parity_no_such_metric_total" in problems
    assert "is not uid parity-prometheus" in problems
    assert "undefined variable $nope" in problems


def test_metric_name_extraction() -> None:
    expr = ('sum by (route) (rate(parity_pairs_total{outcome="match", route=~"a.b"}[5m])) / ignoring (leg) '
            'route:parity_ratio:rate5m{leg="x"} or vector(0)')
    assert metric_names(expr) == {"parity_pairs_total", "route:parity_ratio:rate5m"}


def test_provisioning_points_at_the_dashboards(builder: ModuleType) -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "parity.yml").read_text())["providers"]
    assert providers[0]["type"] == "file"
    assert providers[0]["options"]["path"] == "${PARITY_DASHBOARDS_DIR}"
    assert provisioned_uid() == builder.DATASOURCE_UID
