"""Architecture rules read from the source with ``ast``: ``wire`` imports only the stdlib and ``wire`` (and no
I/O, clock, env or logging module); only ``shadow/mitm.py`` imports mitmproxy; ``wire`` never opens files or prints."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wire", "gateway", "shadow", "recorder", "diffing", "parity")


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def py_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def test_wire_imports_only_stdlib_and_wire() -> None:
    stdlib = sys.stdlib_module_names
    banned_stdlib = {"asyncio", "socket", "logging", "os", "time", "threading", "subprocess", "sqlite3", "selectors"}
    bad = []
    for path in py_files("wire"):
        for line, name in imports(path):
            top = name.split(".")[0]
            if top == "wire" or top == "__future__":
                continue
            if top not in stdlib or top in banned_stdlib:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert not bad, "\n".join(bad)


def test_wire_reads_no_clock_env_or_files() -> None:
    bad = []
    for path in py_files("wire"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "print"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: calls {node.func.id}()")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("input", "__import__"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: calls {node.func.id}()")
    assert not bad, "\n".join(bad)


def test_only_shadow_mitm_imports_mitmproxy() -> None:
    bad = []
    for package in PACKAGES:
        if not (ROOT / package).exists():
            continue
        for path in py_files(package):
            if path.relative_to(ROOT).as_posix() == "shadow/mitm.py":
                continue
            for line, name in imports(path):
                if name.split(".")[0] == "mitmproxy":
                    bad.append(f"{path.relative_to(ROOT)}:{line}: imports {name}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_imports() -> None:
    # The checks above would pass vacuously if imports() found nothing.
    found = {name for _, name in imports(ROOT / "wire" / "frames.py")}
    assert {"json", "wire.model"} <= found
