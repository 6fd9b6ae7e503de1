"""The command line as other tools drive it (DESIGN.md §1)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest


def batchgate(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchgate", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_keys_create_prints_the_secret_alone_on_the_last_line_and_list_never_shows_it(tmp_path):
    created = batchgate("keys", "create", "--name", "ci", "--data-dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    secret = created.stdout.splitlines()[-1]
    assert re.fullmatch(r"bg-[A-Za-z0-9_-]{20,}", secret)
    listed = batchgate("keys", "list", "--data-dir", str(tmp_path))
    assert "ci" in listed.stdout and "active" in listed.stdout
    assert secret not in listed.stdout


def test_keys_revoke_by_name_and_unknown_key(tmp_path):
    batchgate("keys", "create", "--name", "old", "--data-dir", str(tmp_path))
    assert batchgate("keys", "revoke", "old", "--data-dir", str(tmp_path)).returncode == 0
    assert "revoked at" in batchgate("keys", "list", "--data-dir", str(tmp_path)).stdout
    missing = batchgate("keys", "revoke", "nobody", "--data-dir", str(tmp_path))
    assert missing.returncode == 1 and "nobody" in missing.stderr


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["keys", "create"], ["keys", "list"]])
def test_every_flag_names_its_environment_variable(command):
    text = batchgate(*command, "--help").stdout
    flags = re.findall(r"^\s+(--[a-z-]+)", text, re.MULTILINE)
    for flag in set(flags) - {"--help", "--name", "--owner"}:
        assert f"BATCHGATE_{flag[2:].replace('-', '_').upper()}" in text, flag


def test_bad_settings_are_one_clear_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[upstreams]]\nname = 'x'\n")
    result = batchgate("serve", "--config", str(bad), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "base_url" in result.stderr and "Traceback" not in result.stderr
    result = batchgate("serve", "--data-dir", str(tmp_path), env={"BATCHGATE_PORT": "eighty", "PATH": ""})
    assert result.returncode == 2 and "BATCHGATE_PORT" in result.stderr


def test_a_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = batchgate("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--database-url", "postgresql://nobody@127.0.0.1:{port}/nothing", "cannot use database"),
        ("--database-url", "mysql://somewhere/db", "unsupported scheme 'mysql'"),
        ("--storage-url", "s3:///no-bucket", "names no bucket"),
        ("--storage-url", "gs://bucket/prefix", "unsupported scheme 'gs'"),
    ],
)
def test_an_unusable_database_or_storage_url_is_a_clear_error(tmp_path, flag, value, message):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once the socket closes
    result = batchgate("worker", flag, value.format(port=port), "--data-dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
