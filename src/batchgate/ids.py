"""Identifiers and secrets the server hands out."""

from __future__ import annotations

import hashlib
import random
import secrets

# Per-line ids must be unique, not unguessable: a PRNG seeded from the OS spares a system call per line.
_line_ids = random.Random()


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def file_id() -> str:
    return new_id("file-")


def batch_id() -> str:
    return new_id("batch_")


def request_id() -> str:
    return f"batch_req_{_line_ids.getrandbits(128):032x}"


def new_secret() -> str:
    return "bg-" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Keys are long random strings, so a fast unsalted hash is enough to keep them out of the database.
    return hashlib.sha256(secret.encode()).hexdigest()
