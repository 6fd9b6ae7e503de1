"""The live bar of `batchgate run`, read off a real terminal (tmux) while the batch moves."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time

import pytest

from tests.support.cli import client_env
from tests.support.lifecycle import chat_line, jsonl
from tests.support.servers import MockUpstream, upstream_config
from tests.support.system import ensure_program


@pytest.fixture
def tmux(tmp_path):
    """tmux(*args) on a tmux server of this test's own; the server is killed at the end."""
    program = ensure_program("tmux")
    socket = str(tmp_path / "tmux.sock")

    def run(*args: str, env: dict | None = None) -> str:
        return subprocess.run(
            [program, "-S", socket, *args], env=env, capture_output=True, text=True, check=True, timeout=30
        ).stdout

    yield run
    subprocess.run([program, "-S", socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def slow_gateway(make_gateway, tmp_path):
    upstream = MockUpstream(tmp_path, 0.3)
    yield make_gateway(upstream_config(("slow", upstream.base_url, ["*"])))
    upstream.stop()


def start_run(tmux, gateway, folder) -> None:
    """`batchgate run` of 30 slow lines in a new 100×20 terminal; `EXIT=<code>` is printed when it ends.

    The mock reports one of each line's three prompt tokens as served by its prefix cache."""
    (folder / "job.jsonl").write_bytes(jsonl(chat_line(f"r{i}", f"line {i} [cached:1]") for i in range(30)))
    command = " ".join([shlex.quote(sys.executable), "-m", "batchgate", "run", "job.jsonl", "--max-concurrency", "2"])
    env = client_env(gateway, TERM="xterm-256color")
    tmux(
        "new-session", "-d", "-x", "100", "-y", "20", "-c", str(folder), f"{command}; echo EXIT=$?; sleep 120", env=env
    )


def screen_until(tmux, text: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while text not in (screen := tmux("capture-pane", "-p", "-J")) and time.monotonic() < deadline:
        time.sleep(0.1)
    return screen


def test_the_bar_shows_the_batch_moving_in_a_terminal(slow_gateway, tmp_path, tmux):
    start_run(tmux, slow_gateway, tmp_path)
    done_counts: list[int] = []
    screen = ""
    deadline = time.monotonic() + 90
    while "EXIT=" not in screen and time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-J")
        if (match := re.search(r"(\d+)/30 done", screen)) and (not done_counts or done_counts[-1] != int(match[1])):
            done_counts.append(int(match[1]))
        time.sleep(0.1)
    assert "EXIT=0" in screen, screen
    # The bar was redrawn in place with counts that rose to the end, and shows the rate, ETA and status.
    assert len(done_counts) >= 3 and done_counts == sorted(done_counts) and done_counts[-1] == 30, done_counts
    bar = next(line for line in screen.splitlines() if "/30 done" in line)
    assert "0 failed" in bar and "lines/s" in bar and "ETA" in bar and "completed" in bar
    assert "33% cached" in bar  # the cache hit rate: 30 of the 90 input tokens
    assert screen.count("/30 done") == 1
    assert (tmp_path / "job.output.jsonl").exists()


def test_ctrl_c_in_a_terminal_stops_the_bar_and_asks(slow_gateway, tmp_path, tmux):
    start_run(tmux, slow_gateway, tmp_path)
    screen_until(tmux, " done ")
    tmux("send-keys", "C-c")
    assert "[c]ancel / [l]eave" in screen_until(tmux, "[c]ancel / [l]eave")
    tmux("send-keys", "l", "Enter")
    screen = screen_until(tmux, "EXIT=")
    assert "EXIT=130" in screen and "follow it again with: batchgate watch batch_" in screen, screen
