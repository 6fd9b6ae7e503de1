"""Which files the dashboard's static route serves: its own, of the kinds a page loads, nothing else."""

from __future__ import annotations

import pytest

from batchgate.dashboard.routes import STATIC, static_file


@pytest.mark.parametrize("name", ["index.html", "style.css", "icon.svg", "js/main.js", "js/views/batch.js"])
def test_its_own_files_are_served(name):
    assert static_file(name) == (STATIC / name).resolve()


@pytest.mark.parametrize(
    "name",
    [
        "../routes.py",  # outside the folder
        "../../api/app.py",
        "js/../../routes.py",
        "/etc/passwd",  # an absolute path replaces the folder when joined
        "js/nothing.js",  # not there
        "js",  # a folder
        "js/views",
    ],
)
def test_nothing_else_is(name):
    assert static_file(name) is None


def test_a_file_of_another_kind_is_not_served(tmp_path, monkeypatch):
    # Only page files: a stray file left in the folder (an editor's backup, a map) stays private.
    (tmp_path / "notes.txt").write_text("private")
    (tmp_path / "app.js").write_text("")
    monkeypatch.setattr("batchgate.dashboard.routes.STATIC", tmp_path)
    assert static_file("notes.txt") is None
    assert static_file("app.js") == (tmp_path / "app.js").resolve()
