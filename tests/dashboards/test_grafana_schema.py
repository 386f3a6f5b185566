"""The dashboards validate against Grafana's dashboard schema.

The schema is the one Grafana publishes for its dashboard kind, as generated (by Grafana's ``cog``) into the
models of the official ``grafana-foundation-sdk`` (pinned in the ``dev`` extra to the Grafana 11.0 build, the
release of our ``schemaVersion`` 39). Two checks per dashboard:

* nothing is lost: the JSON read into the schema models and written back keeps every key and value we wrote
  (a key the schema does not define is dropped by the models, so a typo or a misplaced field shows here);
* every value has its schema type: integers, numbers, strings, enums and literal sets, nested objects, and panel
  ``options``/``fieldConfig.defaults.custom`` with the models of the panel's own plugin (stat, timeseries, ...);
  each panel type must be a plugin the schema knows and each query a known datasource's query;
* the keys the schema leaves optional but a usable dashboard needs (title, panels, each panel's gridPos, ...)
  are there. Grid bounds (24 columns, no overlap) are checked in test_grafana.py.

The mutation tests prove the checker catches each kind of mistake.
"""

from __future__ import annotations

import copy
import enum
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.cog.runtime import Runtime, UnknownDataquery
from grafana_foundation_sdk.models.dashboard import Dashboard

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))

register_default_plugins()  # panel options and datasource queries decode into their plugins' models


def _written(model: Any) -> Any:
    return json.loads(json.dumps(model, cls=JSONEncoder))


def lost(ours: Any, back: Any, path: str = "") -> list[str]:
    """What of ``ours`` did not survive the round trip through the schema models (``back``)."""
    if isinstance(ours, dict):
        if not isinstance(back, dict):
            return [f"{path}: became {type(back).__name__}"]
        out: list[str] = []
        for k, v in ours.items():
            if k not in back:
                out.append(f"{path}.{k}: not in the schema")
            else:
                out += lost(v, back[k], f"{path}.{k}")
        return out
    if isinstance(ours, list):
        if not isinstance(back, list) or len(back) != len(ours):
            return [f"{path}: list changed"]
        return [e for i, (a, b) in enumerate(zip(ours, back, strict=True)) for e in lost(a, b, f"{path}[{i}]")]
    return [] if ours == back else [f"{path}: {ours!r} became {back!r}"]


def typecheck(obj: Any, path: str = "") -> list[str]:
    """Every attribute of a schema model against its declared type (recursively)."""
    if not hasattr(obj, "to_json") or isinstance(obj, enum.Enum):
        return []
    hints = typing.get_type_hints(type(obj), vars(sys.modules[type(obj).__module__]))
    return [e for name, hint in hints.items() for e in _check(getattr(obj, name, None), hint, f"{path}.{name}")]


def _check(v: Any, hint: Any, path: str) -> list[str]:  # noqa: PLR0911 - one branch per kind of type
    origin = typing.get_origin(hint)
    if hint is typing.Any or hint is object:
        return typecheck(v, path)
    if origin is typing.Union or origin is types.UnionType:
        results = [_check(v, h, path) for h in typing.get_args(hint)]
        return [] if any(not r for r in results) else min(results, key=len)
    if hint is type(None):
        return [] if v is None else [f"{path}: expected null, got {v!r}"]
    if origin is typing.Literal:
        return [] if v in typing.get_args(hint) else [f"{path}: {v!r} is not one of {typing.get_args(hint)}"]
    if origin is list:
        if not isinstance(v, list):
            return [f"{path}: expected a list, got {type(v).__name__}"]
        (item,) = typing.get_args(hint) or (typing.Any,)
        return [e for i, x in enumerate(v) for e in _check(x, item, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(v, dict):
            return [f"{path}: expected an object, got {type(v).__name__}"]
        value_type = typing.get_args(hint)[1]
        return [e for k, x in v.items() for e in _check(x, value_type, f"{path}.{k}")]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            hint(v.value if isinstance(v, enum.Enum) else v)
        except ValueError:
            return [f"{path}: {v!r} is not a {hint.__name__}"]
        return []
    if hint is bool:
        return [] if isinstance(v, bool) else [f"{path}: expected a boolean, got {v!r}"]
    if hint is int:
        return [] if isinstance(v, int) and not isinstance(v, bool) else [f"{path}: expected an integer, got {v!r}"]
    if hint is float:
        ok = isinstance(v, int | float) and not isinstance(v, bool)
        return [] if ok else [f"{path}: expected a number, got {v!r}"]
    if isinstance(hint, type):
        if isinstance(v, dict) and hasattr(hint, "from_json"):  # a field the parent's from_json leaves raw
            model = hint.from_json(v)
            return lost(v, _written(model), path) + typecheck(model, path)
        return typecheck(v, path) if isinstance(v, hint) else [
            f"{path}: expected {hint.__name__}, got {type(v).__name__}"]
    return []


#: What the schema leaves optional but a dashboard of ours must have (Grafana fills in defaults silently).
REQUIRED = {"dashboard": ("uid", "title", "schemaVersion", "panels", "time"),
            "panel": ("id", "type", "title", "gridPos", "datasource", "targets")}


def _plugin_errors(model: Any) -> list[str]:
    """Each panel's type is a panel plugin the schema knows, its options were read by that plugin's models (an
    unknown type would leave them unchecked), and each query was read as its datasource's query model."""
    errors: list[str] = []
    plugins = Runtime().panelcfg_variants
    for i, panel in enumerate(model.panels or []):
        where = f".panels[{i}]"
        config = plugins.get(panel.type_val)
        if config is None:
            errors.append(f"{where}.type: {panel.type_val!r} is not a panel plugin of the schema")
            continue
        if config.options_from_json_hook is not None and isinstance(panel.options, dict):
            errors.append(f"{where}.options: not read by the {panel.type_val} models")
        for j, target in enumerate(panel.targets or []):
            if isinstance(target, UnknownDataquery):
                errors.append(f"{where}.targets[{j}]: not a query of a known datasource type")
    return errors


def schema_errors(dashboard: dict[str, Any]) -> list[str]:
    errors = [f".{k}: required" for k in REQUIRED["dashboard"] if k not in dashboard]
    errors += [f".panels[{i}].{k}: required" for i, p in enumerate(dashboard.get("panels", []))
               for k in REQUIRED["panel"] if k not in p]
    try:
        model = Dashboard.from_json(dashboard)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # the models cannot even read it
        return [*errors, f"unreadable by the schema models: {type(exc).__name__}: {exc}"]
    return errors + lost(dashboard, _written(model)) + typecheck(model) + _plugin_errors(model)


def test_there_are_dashboards_to_check() -> None:
    assert {p.stem for p in DASHBOARDS} == {"cutover-overview", "method-drilldown", "proxy-health"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_matches_grafana_schema(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert schema_errors(dashboard) == []
    assert dashboard["panels"], "a dashboard without panels proves nothing"


def _mutated(change: typing.Callable[[dict[str, Any]], None]) -> list[str]:
    dashboard = copy.deepcopy(json.loads((GRAFANA / "cutover-overview.json").read_text()))
    change(dashboard)
    return schema_errors(dashboard)


def _first(dashboard: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(p for p in dashboard["panels"] if p["type"] == kind)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(graphTooltipp=1), ".graphTooltipp: not in the schema"),
        (lambda d: d.update(graphTooltip=7), ".graph_tooltip: 7 is not a DashboardCursorSync"),
        (lambda d: d["panels"][0]["gridPos"].update(w="6"), "expected an integer, got '6'"),
        (lambda d: d["panels"][0].update(repeatDirection="x"), "'x' is not one of ('h', 'v')"),
        (lambda d: d["panels"][0]["gridPos"].update(width=6), ".gridPos.width: not in the schema"),
        (lambda d: _first(d, "stat")["options"].update(colorMode="rainbow"), "'rainbow' is not a"),
        (lambda d: _first(d, "timeseries")["fieldConfig"]["defaults"].update(unitt="s"), "unitt: not in the schema"),
        (lambda d: d.update(editable="yes"), ".editable: expected a boolean, got 'yes'"),
        (lambda d: _first(d, "stat").update(type="stats"), "'stats' is not a panel plugin of the schema"),
        (lambda d: d["panels"][0].pop("gridPos"), ".panels[0].gridPos: required"),
        (lambda d: d.pop("title"), ".title: required"),
        (lambda d: [x["datasource"].update(type="nosuchdb") for x in (d["panels"][0], *d["panels"][0]["targets"])],
         "not a query of a known datasource type"),
        (lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(mappings=[{"type": "bogus"}]), "unreadable"),
    ],
    ids=["unknown-key", "bad-enum", "wrong-type", "bad-literal", "nested-unknown-key", "panel-option-enum",
         "field-config-unknown-key", "bool", "unknown-panel-type", "missing-gridpos", "missing-title",
         "unknown-datasource", "unreadable"],
)
def test_schema_check_catches_each_kind_of_mistake(change: typing.Callable[[dict[str, Any]], None],
                                                   expected: str) -> None:
    errors = _mutated(change)
    assert any(expected in e for e in errors), errors
