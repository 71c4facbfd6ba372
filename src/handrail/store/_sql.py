"""Named SQL queries and numbered migrations, read from a backend's ``.sql`` files.

A queries file holds blocks that start with ``-- name: some_query``; a migrations folder
holds ``NNNN_description.sql`` files applied in order, each once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    """The named queries of ``package``'s ``filename``."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        queries[name] = body.strip().rstrip(";")
    return queries


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """``package``'s migrations folder, in version order."""
    folder = resources.files(package).joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{package}: migrations must be numbered 1..n, found {versions}")
    return found


def read_schema(package: str) -> str:
    """``package``'s ``schema.sql``: what applying every migration must yield."""
    return resources.files(package).joinpath("schema.sql").read_text(encoding="utf-8")
