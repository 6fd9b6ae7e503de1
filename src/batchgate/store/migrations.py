"""Versioned schema migrations: `migrations/NNNN_name.sql`, applied in order, once each."""

from __future__ import annotations

from importlib import resources


def migration_scripts() -> list[tuple[int, str]]:
    folder = resources.files("batchgate.store") / "migrations"
    scripts = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            scripts.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(scripts)
