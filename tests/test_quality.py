"""The tree stays ruff-clean and mypy-strict-clean, and the facade matches the docs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import handrail

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    which = shutil.which(name)
    if which is None:
        pytest.fail(f"{name} is not installed; pip install -e '.[dev]'")
    return which


def test_ruff_is_clean() -> None:
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_all_is_sorted_and_complete() -> None:
    names = handrail.__all__
    assert list(names) == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert hasattr(handrail, name), name
    documented = {
        "App",
        "TaskContext",
        "TaskHandle",
        "Worker",
        "Reversibility",
        "NOT_DONE",
        "UNKNOWN",
        "ToolCall",
        "TaskStatus",
        "EventKind",
        "Event",
        "HandrailError",
        "ToolCallFailed",
        "NonDeterminismError",
        "SerializationError",
        "TaskFailedError",
        "TaskCancelledError",
    }
    assert documented <= set(names)


def test_import_is_light() -> None:
    """`import handrail` pulls in no CLI, database driver or event loop."""
    code = (
        "import sys, handrail; "
        "heavy = {'click', 'rich', 'psycopg', 'asyncio', 'sqlite3', 'cryptography'}; "
        "heavy &= set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
