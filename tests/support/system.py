"""Debian programs some tests drive (tmux for the terminal, chromium for the dashboard).

CI starts from a fresh machine: a test that needs one of them installs it once with apt-get,
so the one test command keeps working there. A machine without apt-get or root fails loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess

# Debian package → the program it installs.
PROGRAMS = {"tmux": "tmux", "chromium": "chromium"}
_updated = False


def ensure_program(package: str) -> str:
    """The path of `package`'s program, installing the package first if it is missing."""
    global _updated
    program = PROGRAMS[package]
    if found := shutil.which(program):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        _updated = True
    subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, env=env, capture_output=True)
    found = shutil.which(program)
    if not found:
        raise RuntimeError(f"apt-get installed {package} but {program} is not on PATH")
    return found
