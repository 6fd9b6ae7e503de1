"""batchgate.domain.status: the batch state machine."""

from __future__ import annotations

import dataclasses

import pytest

from batchgate.domain.records import BatchRecord
from batchgate.domain.status import (
    ACTIVE,
    CANCELLABLE,
    TERMINAL,
    TRANSITIONS,
    BatchStatus,
    can_move,
    timestamp_field,
    unfinished_line_code,
)

S = BatchStatus


def test_statuses_are_the_openai_ones():
    assert {s.value for s in BatchStatus} == {
        "validating",
        "failed",
        "in_progress",
        "finalizing",
        "completed",
        "expired",
        "cancelling",
        "cancelled",
    }


def test_every_status_has_a_transition_entry():
    assert set(TRANSITIONS) == set(BatchStatus)


def test_terminal_statuses():
    assert {S.COMPLETED, S.FAILED, S.EXPIRED, S.CANCELLED} == TERMINAL
    assert {S.VALIDATING, S.IN_PROGRESS, S.FINALIZING, S.CANCELLING} == ACTIVE


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.EXPIRED, S.CANCELLED])
def test_terminal_statuses_have_no_transitions(status):
    assert TRANSITIONS[status] == frozenset()
    assert not any(can_move(status, target) for target in BatchStatus)


@pytest.mark.parametrize(
    "current, target",
    [
        (S.VALIDATING, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.FINALIZING),
        (S.FINALIZING, S.COMPLETED),
        (S.VALIDATING, S.FAILED),
        (S.IN_PROGRESS, S.CANCELLING),
        (S.CANCELLING, S.CANCELLED),
        (S.IN_PROGRESS, S.EXPIRED),
        (S.VALIDATING, S.EXPIRED),
        (S.VALIDATING, S.CANCELLING),
        (S.IN_PROGRESS, S.FAILED),  # the input file was lost from storage
        (S.CANCELLING, S.FAILED),
        (S.FINALIZING, S.FAILED),
    ],
)
def test_allowed_transitions(current, target):
    assert can_move(current, target)


@pytest.mark.parametrize(
    "current, target",
    [
        (S.VALIDATING, S.COMPLETED),
        (S.VALIDATING, S.FINALIZING),
        (S.IN_PROGRESS, S.COMPLETED),
        (S.IN_PROGRESS, S.VALIDATING),
        (S.FINALIZING, S.EXPIRED),  # every line is answered: it completes, however late
        (S.FINALIZING, S.IN_PROGRESS),
        (S.FINALIZING, S.CANCELLING),
        (S.CANCELLING, S.IN_PROGRESS),
        (S.CANCELLING, S.COMPLETED),
        (S.COMPLETED, S.IN_PROGRESS),
        (S.CANCELLED, S.CANCELLING),
    ],
)
def test_forbidden_transitions(current, target):
    assert not can_move(current, target)


@pytest.mark.parametrize("status", list(BatchStatus))
def test_no_status_moves_to_itself(status):
    assert not can_move(status, status)


def test_every_status_is_reachable_from_validating():
    seen, todo = {S.VALIDATING}, [S.VALIDATING]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(BatchStatus)


def test_every_active_status_can_reach_a_terminal_one():
    for status in ACTIVE:
        seen, todo = {status}, [status]
        while todo:
            for nxt in TRANSITIONS[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen & TERMINAL, status


def test_cancellable():
    assert {S.VALIDATING, S.IN_PROGRESS} == CANCELLABLE
    for status in CANCELLABLE:
        assert can_move(status, S.CANCELLING)
    assert not CANCELLABLE & TERMINAL


@pytest.mark.parametrize(
    "status, field",
    [
        (S.VALIDATING, None),
        (S.IN_PROGRESS, "in_progress_at"),
        (S.FINALIZING, "finalizing_at"),
        (S.COMPLETED, "completed_at"),
        (S.FAILED, "failed_at"),
        (S.EXPIRED, "expired_at"),
        (S.CANCELLING, "cancelling_at"),
        (S.CANCELLED, "cancelled_at"),
    ],
)
def test_timestamp_field(status, field):
    assert timestamp_field(status) == field


@pytest.mark.parametrize("status", [s for s in BatchStatus if s is not S.VALIDATING])
def test_timestamp_field_is_a_batch_record_field(status):
    fields = {f.name for f in dataclasses.fields(BatchRecord)}
    assert timestamp_field(status) in fields


@pytest.mark.parametrize(
    "status, code",
    [
        (S.CANCELLED, "batch_cancelled"),
        (S.EXPIRED, "batch_expired"),
        (S.COMPLETED, None),
        (S.FAILED, None),
        (S.IN_PROGRESS, None),
        (S.CANCELLING, None),
    ],
)
def test_unfinished_line_code(status, code):
    assert unfinished_line_code(status) == code


def test_status_is_its_wire_string():
    assert S("in_progress") is S.IN_PROGRESS
    assert S.CANCELLING == "cancelling"
