"""Worker ids, /proc stat lines, and when an owner of leases is provably dead (domain/liveness.py)."""

from __future__ import annotations

import pytest

from batchgate.domain.liveness import (
    ProcessIdentity,
    ProcessState,
    host_key,
    parse_stat,
    parse_worker_id,
    past_grace,
    provably_dead,
    worker_id,
)

HERE = ProcessIdentity("web-1", 100, 5000, host_key("boot-a", 4026531836))
OWNER = ProcessIdentity("web-1", 4242, 9000, HERE.host_key)
# A real line's shape: the command name may hold spaces and parentheses.
STAT = "4242 (python3 (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 12 3 0 0 20 0 3 0 9000 123456 789 0"


def test_a_worker_id_carries_its_identity_and_reads_back():
    owner = worker_id("a1b2c3", "ignored", 1, OWNER)
    assert owner == f"web-1:4242:a1b2c3:9000:{OWNER.host_key}"
    assert f":{OWNER.pid}:" in owner  # the pid stays the second field, as operators read it
    assert parse_worker_id(owner) == OWNER


@pytest.mark.parametrize(
    "owner", ["web-1:4242:a1b2c3", "w1", "", "web-1:x:t:9000:k", "web-1:1:t:s:k", "web-1:1:t:9000:", "a:b:1:t:2:k"]
)
def test_ids_without_an_identity_parse_to_none(owner):
    assert parse_worker_id(owner) is None


def test_without_an_identity_the_old_style_id_is_kept():
    assert worker_id("a1b2c3", "web-1", 4242, None) == "web-1:4242:a1b2c3"


def test_the_host_key_tells_boots_and_pid_namespaces_apart():
    assert host_key("boot-a\n", 7) == host_key("boot-a", 7)
    assert len({host_key("boot-a", 7), host_key("boot-b", 7), host_key("boot-a", 8)}) == 3


def test_a_stat_line_gives_state_and_start_time():
    assert parse_stat(STAT) == ProcessState("S", 9000)
    assert parse_stat("") is None
    assert parse_stat("4242 (cut short) S 1 2") is None


def test_a_gone_process_is_dead():
    assert provably_dead(OWNER, HERE, None)


def test_a_reused_pid_is_dead_owner():
    assert provably_dead(OWNER, HERE, ProcessState("R", 9001))


@pytest.mark.parametrize("state", ["Z", "X"])
def test_a_zombie_is_dead(state):
    assert provably_dead(OWNER, HERE, ProcessState(state, 9000))


@pytest.mark.parametrize("state", ["R", "S", "D", "T", "t"])
def test_a_running_sleeping_or_frozen_owner_is_alive(state):
    assert not provably_dead(OWNER, HERE, ProcessState(state, 9000))


def test_a_process_we_may_not_read_is_alive():
    assert not provably_dead(OWNER, HERE, ProcessState("?", None))


@pytest.mark.parametrize(
    "owner",
    [
        ProcessIdentity("web-1", 4242, 9000, host_key("boot-b", 4026531836)),  # another machine, same hostname
        ProcessIdentity("web-1", 4242, 9000, host_key("boot-a", 4026532000)),  # another container on this one
        ProcessIdentity("web-2", 4242, 9000, HERE.host_key),  # another hostname
    ],
)
def test_an_owner_elsewhere_is_never_judged_from_our_proc(owner):
    assert not provably_dead(owner, HERE, None)


def test_an_ended_session_is_taken_over_only_once_seen_ended_for_the_grace():
    first_seen: dict[str, float] = {}
    assert past_grace(first_seen, ["a"], 10.0, 1.5) == []
    assert past_grace(first_seen, ["a", "b"], 11.0, 1.5) == []
    assert past_grace(first_seen, ["a", "b"], 11.5, 1.5) == ["a"]
    assert past_grace(first_seen, ["b"], 12.0, 1.5) == [] and "a" not in first_seen, "seen alive again: forgotten"
    assert past_grace(first_seen, ["a", "b"], 12.5, 1.5) == ["b"]
