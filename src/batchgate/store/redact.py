"""Database urls as they may be shown: without their password."""

from __future__ import annotations


def redact(url: str) -> str:
    """postgresql://user:secret@host/db → postgresql://user@host/db; other urls unchanged."""
    head, sep, tail = url.rpartition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
