"""diffing.rules: TOML and YAML rule files layered on the profile; errors name the file, rule and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffing.rules import dump_rules_toml, load_rules, rules_from_data
from wire.errors import ConfigError
from wire.normalize import (
    AsSet,
    Context,
    Drop,
    Mask,
    Monotonic,
    Regex,
    Rename,
    Round,
    SortList,
    Tolerance,
    When,
    apply,
)
from wire.profiles.openclaw import OPENCLAW

TOML = """
[[rules]]
kind = "mask"
path = "payload.build"
reason = "build label"

[[rules]]
kind = "when"
method = "health"
reason = "health only"
rules = [{ kind = "drop", path = "payload.extra", reason = "x" }]
"""

YAML = """
rules:
  - kind: regex
    path: body.message
    pattern: "id=\\\\d+"
    replacement: "id=<n>"
    reason: ids
"""


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(TOML)
    (tmp_path / "r.yaml").write_text(YAML)
    toml_rules = load_rules(tmp_path / "r.toml")
    assert toml_rules[0] == Mask("payload.build", "build label")
    assert isinstance(toml_rules[1], When) and toml_rules[1].method == "health"
    (regex,) = load_rules(tmp_path / "r.yaml")
    assert regex == Regex("body.message", "id=\\d+", "id=<n>", "ids")
    profile = OPENCLAW.with_rules(toml_rules)
    doc = {"payload": {"build": "b1", "extra": 1, "keep": 2}}
    assert apply(profile.rules, doc, Context(method="health")) == {"payload": {"build": "<masked:string>", "keep": 2}}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "[[rules]\n", "bad.toml: invalid TOML"),
        ("bad.yaml", "rules:\n  - kind: mask\n    path: [\n", "bad.yaml:4: invalid YAML"),
        ("bad.json", "{}", "bad.json: rule files must end in"),
        ("empty.toml", "x = 1\n", "empty.toml: expected a top-level 'rules' list"),
        ("notlist.toml", "rules = 1\n", "notlist.toml: rules: expected a list"),
        ("reason.toml", '[[rules]]\nkind = "mask"\npath = "a"\n', "reason.toml: rules[0].reason"),
        ("path.yaml", "rules:\n  - {kind: drop, path: 'a..b', reason: r}\n", "path.yaml: rules[0].path"),
    ],
)
def test_errors_name_the_file_and_rule(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path / name)
    assert str(info.value).startswith(str(tmp_path / message.split(":")[0]) + message[len(message.split(":")[0]):])


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read rule file"):
        load_rules("/nonexistent/rules.toml")


def test_dump_round_trips_every_kind(tmp_path: Path) -> None:
    rules = (SortList("a", "k", "r"), Round("b", 2, "r"), Tolerance("c", 0.5, 0.1, "r"), Drop("e", "r"),
             Regex("f", "^x(\\d)$", r"y\1", "r"), AsSet("g", "r"), Monotonic("h", "r"), Rename("i", "j", "r"),
             When(rules=(Mask("d", "r", "X"),), route="POST /hooks/*", event=None, reason="w"))
    (tmp_path / "x.toml").write_text(dump_rules_toml(rules))
    assert load_rules(tmp_path / "x.toml") == rules
    assert rules_from_data({"rules": []}, "src") == ()
