"""A data dir, database or storage folder that cannot be written: one line on stderr naming it, exit code 2."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = [["serve", "--port", "1"], ["worker"], ["keys", "create", "--name", "k"], ["keys", "list"]]


def batchgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchgate", *args], capture_output=True, text=True, timeout=60)


def assert_refused(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(path) in lines[0] and "writable" in lines[0], lines[0]


@contextlib.contextmanager
def read_only_mount(folder: Path):
    """A tmpfs at `folder` (with a database created in it first), remounted read-only: even root cannot write."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        assert batchgate("keys", "create", "--name", "before", "--data-dir", str(folder / "data")).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_a_data_dir_below_a_file_is_refused_in_one_line(tmp_path, command):
    data_dir = tmp_path / "a-file" / "data"
    (tmp_path / "a-file").write_text("not a folder")
    assert_refused(batchgate(*command, "--data-dir", str(data_dir)), data_dir)


def test_a_read_only_data_dir_is_refused_in_one_line_by_every_command(tmp_path):
    with read_only_mount(tmp_path / "ro") as mount:
        for command in COMMANDS:
            assert_refused(batchgate(*command, "--data-dir", str(mount / "data")), mount / "data")


def test_a_read_only_storage_folder_is_refused_in_one_line(tmp_path):
    with read_only_mount(tmp_path / "ro") as mount:
        for command in (["serve", "--port", "1"], ["worker"]):
            result = batchgate(
                *command, "--data-dir", str(tmp_path / "writable"), "--storage-url", str(mount / "files")
            )
            assert_refused(result, mount / "files")
