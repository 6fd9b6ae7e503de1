"""Real processes for tests: the mock upstream and `batchgate serve`, on loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson

MOCK = Path(__file__).with_name("mock_upstream.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


class MockUpstream:
    """tests/support/mock_upstream.py in its own process; `requests()` reads its log."""

    def __init__(self, folder: Path, latency: float = 0.0, log: bool = True, *options: str):
        self.port = free_port()
        self.log_path = folder / f"mock-{self.port}.log"
        logging = ["--log", str(self.log_path)] if log else []
        self.process = subprocess.Popen(
            [sys.executable, str(MOCK), "--port", str(self.port), *logging, "--latency", str(latency), *options]
        )
        wait_for_port(self.port, self.process)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        return [orjson.loads(line) for line in self.log_path.read_bytes().splitlines() if line.strip()]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class Gateway:
    """`batchgate serve` as a user runs it, with one API key ready."""

    def __init__(self, folder: Path, config: str = "", env: dict[str, str] | None = None, args: tuple[str, ...] = ()):
        self.folder = folder
        self.args = args  # more flags for `batchgate serve`
        self.data_dir = folder / "data"
        self.config_path = folder / "batchgate.toml"
        self.config_path.write_text(config)
        self.env = {
            **os.environ,
            "BATCHGATE_POLL_INTERVAL_SECONDS": "0.1",
            "BATCHGATE_LEASE_SECONDS": "2",
            "BATCHGATE_RETRY_BASE_SECONDS": "0.05",
            "BATCHGATE_LOG_LEVEL": "warning",
            **(env or {}),
        }
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.key = self.create_key("test")
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "batchgate",
                *args,
                "--data-dir",
                str(self.data_dir),
                "--config",
                str(self.config_path),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def create_key(self, name: str, owner: str | None = None) -> str:
        result = self.cli("keys", "create", "--name", name, *(["--owner", owner] if owner else []))
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        with open(self.folder / "serve.log", "ab") as log:  # the server keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "batchgate",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--config",
                    str(self.config_path),
                    *self.args,
                ],
                env=self.env,
                stderr=log,
            )
        wait_for_port(self.port, self.process)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("batchgate never became healthy")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class GatewayFactory:
    """make(config_text="", env={}, args=()) → a running Gateway in its own folder under `root`; stop_all() at the end.

    `backing()` gives each gateway the environment of its own database and storage (none: the embedded ones).
    """

    def __init__(self, root: Path, backing: Callable[[], dict[str, str]] = dict):
        self.root = root
        self.backing = backing
        self.started: list[Gateway] = []

    def __call__(
        self, config: str = "", env: dict[str, str] | None = None, name: str = "gw", args: tuple[str, ...] = ()
    ) -> Gateway:
        folder = self.root / f"{name}{len(self.started)}"
        folder.mkdir()
        gateway = Gateway(folder, config, {**self.backing(), **(env or {})}, args)
        self.started.append(gateway)
        return gateway

    def stop_all(self) -> None:
        for gateway in self.started:
            gateway.stop()


def upstream_config(*upstreams: tuple[str, str, list[str]], extra: str = "") -> str:
    """TOML for settings lines in `extra` plus [[upstreams]] tables of (name, base_url, models)."""
    tables = [
        f'[[upstreams]]\nname = "{name}"\nbase_url = "{url}"\nmodels = {orjson.dumps(models).decode()}\n'
        for name, url, models in upstreams
    ]
    return extra + "\n" + "\n".join(tables)
