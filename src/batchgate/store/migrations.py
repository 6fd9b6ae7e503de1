"""Versioned schema migrations: `migrations/<dialect>/NNNN_name.sql`, applied in order, once each.

Each dialect has its own folder; the two must describe the same schema (a test compares them).
"""

from __future__ import annotations

from importlib import resources


def migration_scripts(dialect: str) -> list[tuple[int, str]]:
    folder = resources.files("batchgate.store") / "migrations" / dialect
    scripts = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            scripts.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(scripts)


def statements(script: str) -> list[str]:
    """The statements of a script (no `;` inside a statement or comment)."""
    return [
        s
        for s in script.split(";")
        if s.strip() and not all(line.strip().startswith("--") or not line.strip() for line in s.splitlines())
    ]
