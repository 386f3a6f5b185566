"""The scenario language (recorder.scenario): what parses, and that every malformation names file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.scenario import load_path, load_scenarios, parse_text
from wire.errors import ScenarioError

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

GOOD = """\
scenarios:
  - id: one
    title: a title
    steps:
      - ws_connect: {conn: c1, device: true}
      - id: rpc
        ws_rpc: {conn: c1, method: health, params: {}}
      - ws_send: {conn: c1, frame: {type: req, id: "{{uuid:x}}", method: echo}}
      - ws_expect: {conn: c1, until: {res: "{{uuid:x}}"}, timeout_ms: 2000}
      - ws_expect: {conn: c1, until: {event: chat, state: final}}
      - ws_expect: {conn: c1, until: {res: x, nth: 2}}
      - ws_expect: {conn: c1, until: close}
      - http: {method: POST, path: /hooks/wake, headers: {Authorization: "Bearer {{hook_token}}"}, json: {text: "{{pad:10}}"}}
      - sleep_ms: 10
  - id: two
    requires: {auth: password}
    steps:
      - ws_close: {conn: c1}
"""


def test_a_good_file_parses_into_typed_steps() -> None:
    one, two = parse_text(GOOD, "good.yaml")
    assert one.id == "one" and one.title == "a title" and one.auth_mode == "token"
    assert [s.kind for s in one.steps] == ["ws_connect", "ws_rpc", "ws_send", "ws_expect", "ws_expect", "ws_expect",
                                           "ws_expect", "http", "sleep_ms"]
    assert [s.id for s in one.steps][:3] == ["s1", "rpc", "s3"]
    assert one.steps[0].line == 5 and one.where == "good.yaml:2"
    assert one.steps[8].args == {"ms": 10}
    assert one.resign_steps == ["s1"]
    assert two.auth_mode == "password" and two.resign_steps == []


@pytest.mark.parametrize(("text", "line", "message"), [
    ("scenarios: [\n", 2, "invalid YAML"),
    ("", 1, "empty file"),
    ("other: 1\n", 1, "unknown top-level key 'other'"),
    ("scenarios: []\n", 1, "non-empty list"),
    ("scenarios:\n  - title: x\n    steps: [{sleep_ms: 1}]\n", 2, "scenario without 'id'"),
    ("scenarios:\n  - id: Bad Id\n    steps: [{sleep_ms: 1}]\n", 2, "scenario id must be lowercase"),
    ("scenarios:\n  - id: a\n", 2, "has no 'steps'"),
    ("scenarios:\n  - id: a\n    colour: red\n    steps: [{sleep_ms: 1}]\n", 3, "unknown scenario key 'colour'"),
    ("scenarios:\n  - id: a\n    requires: {auth: kerberos}\n    steps: [{sleep_ms: 1}]\n", 3, "requires must be"),
    ("scenarios:\n  - id: a\n    steps:\n      - teleport: {}\n", 4, "a step is one of"),
    ("scenarios:\n  - id: a\n    steps:\n      - {ws_open: {}, ws_close: {}}\n", 4, "a step is one of"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_rpc: {conn: c1}\n", 4, "missing required argument 'method'"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_rpc:\n          method: health\n          bogus: 1\n", 6,
     "unknown argument 'bogus'"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_connect:\n          scopes: operator.read\n", 5,
     "ws_connect.scopes must be list"),
    ("scenarios:\n  - id: a\n    steps:\n      - sleep_ms: 999999\n", 4, "sleep_ms must be an integer"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_send: {conn: c1}\n", 4, "exactly one of frame, text"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_expect:\n          until: {res: x, event: y}\n", 5,
     "until takes exactly one of"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_expect: {until: sometime}\n", 4, "until must be 'close'"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_expect: {until: {event: x, nth: 2}}\n", 4, "until takes exactly"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_expect: {until: {res: x, nth: 0}}\n", 4, "until.nth must be"),
    ("scenarios:\n  - id: a\n    steps:\n      - http: {path: nope}\n", 4, "must start with /"),
    ("scenarios:\n  - id: a\n    steps:\n      - http: {path: /x, json: {}, text: y}\n", 4, "at most one of"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_send:\n          text: \"{{tokken}}\"\n", 5,
     "unknown placeholder '{{tokken}}'"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_send:\n          text: \"{{pad:many}}\"\n", 5, "needs a number"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_send:\n          text: \"{{ token\"\n", 5, "malformed placeholder"),
    ("scenarios:\n  - id: a\n    steps:\n      - ws_rpc: {method: x, timeout_ms: 0}\n", 4, "timeout_ms must be"),
    ("scenarios:\n  - id: a\n    steps:\n      - {id: x, sleep_ms: 1}\n      - {id: x, sleep_ms: 1}\n", 5,
     "duplicate step id 'x'"),
    ("scenarios:\n  - id: a\n    id: b\n    steps: [{sleep_ms: 1}]\n", 3, "duplicate key 'id'"),
])
def test_malformed_input_names_file_line_and_problem(text: str, line: int, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_text(text, "bad.yaml")
    assert str(info.value).startswith(f"bad.yaml:{line}: "), str(info.value)
    assert message in str(info.value)


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("scenarios:\n  - id: same\n    steps: [{sleep_ms: 1}]\n")
    (tmp_path / "b.yaml").write_text("\n\nscenarios:\n  - id: same\n    steps: [{sleep_ms: 1}]\n")
    with pytest.raises(ScenarioError, match=r"b\.yaml:4: duplicate scenario id 'same' \(first at .*a\.yaml:2\)"):
        load_scenarios([tmp_path])


def test_missing_path_and_empty_dir_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file"):
        load_path(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="no \\*.yaml scenario files"):
        load_path(tmp_path)


def test_the_contract_scenarios_parse_with_at_least_60_unique_ids() -> None:
    scenarios = load_scenarios([SCENARIOS])
    ids = [s.id for s in scenarios]
    assert len(ids) == len(set(ids)) >= 60
    assert all(s.steps for s in scenarios)


def test_the_slow_scenarios_are_kept_out_of_the_default_set() -> None:
    default = {s.id for s in load_scenarios([SCENARIOS])}
    slow = {s.id for s in load_scenarios([SCENARIOS / "slow"])}
    assert slow == {"ws-handshake-timeout"} and not slow & default
