"""Running the client commands of the `batchgate` console script as a user does, against a live gateway."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.servers import Gateway

COMMAND = [sys.executable, "-m", "batchgate"]


def client_env(gateway: Gateway | None = None, **extra: str) -> dict[str, str]:
    """The environment with the gateway's URL and key (BATCHGATE_URL, BATCHGATE_API_KEY) and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHGATE_")}
    if gateway is not None:
        env.update(BATCHGATE_URL=gateway.url, BATCHGATE_API_KEY=gateway.key)
    env.update(extra)
    return env


def batchgate(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=90)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failed command wrote on stderr (and never a traceback)."""
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("batchgate: "), lines[0]
    return lines[0]


class Child:
    """A command left running, its stderr read as it comes; stdin stays open for answers."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path | None = None):
        self.process = subprocess.Popen(
            [*COMMAND, *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._stderr = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        while chunk := self.process.stderr.read1(4096):
            self._stderr += chunk

    @property
    def stderr(self) -> str:
        return self._stderr.decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Until `text` appears on stderr; fails if the command ends or the deadline passes first."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if self.process.poll() is not None:
                self._reader.join(10)
                assert text in self.stderr, f"ended before {text!r}:\n{self.stderr}"
                return
            assert time.monotonic() < deadline, f"no {text!r} within {timeout}s:\n{self.stderr}"
            time.sleep(0.05)

    def answer(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        self.close()
        return code

    def close(self) -> None:
        """Kill the command if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
