"""Webhooks, the I/O part: where a URL may point (guard.py), and sending the outbox's events (courier.py)."""
