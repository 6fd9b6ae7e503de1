"""A webhook receiver process (webhook_receiver.py) for tests, and checks of what it got."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from standardwebhooks.webhooks import Webhook

from tests.support.servers import free_port, wait_for_port

RECEIVER = Path(__file__).with_name("webhook_receiver.py")


class Receiver:
    """Listens on a loopback port (chosen now, so a test may start it later); `calls()` reads its log."""

    def __init__(self, folder: Path, fail: int = 0, port: int | None = None):
        self.port = port or free_port()
        self.fail = fail
        self.log_path = folder / f"receiver-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        command = [sys.executable, str(RECEIVER), "--port", str(self.port), "--log", str(self.log_path)]
        self.process = subprocess.Popen([*command, "--fail", str(self.fail)])
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def calls(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [orjson.loads(line) for line in self.log_path.read_bytes().splitlines() if line.strip()]

    def accepted(self) -> list[dict]:
        """The calls it answered 2xx to, in arrival order."""
        return [call for call in self.calls() if 200 <= call["status"] < 300]


def verified(call: dict, secret: str) -> dict:
    """The event body of a logged call, after standardwebhooks checked its signature (raises if it is wrong)."""
    return Webhook(secret).verify(call["body"], call["headers"])
