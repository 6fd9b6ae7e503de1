"""Fair shares at an upstream's door: deficit round-robin over tenants, then over each tenant's batches.

Every waiting request belongs to a flow `(tenant, batch)`. Tenants take turns; within a tenant its
batches take turns; each turn is worth `quantum` cost units (a request costs 1 by default), so a
flow with a thousand waiting requests and a flow with ten get the same rate while both wait, and
a million-line batch cannot starve a ten-line one. Within one flow, order is first come, first served.

A flow marked `interactive` (a synchronous call, someone waiting on its answer) does not take turns
with batches: the door (upstream/door.py) keeps such calls apart and lets them in first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

T = TypeVar("T")


class Flow(NamedTuple):
    tenant: str = ""
    batch: str = ""
    interactive: bool = False  # a synchronous call: let in before any waiting batch line


ANONYMOUS = Flow()
Path = tuple[Any, ...]  # the keys still to go down, one per level: (tenant, batch) at the root


class _Queue(Protocol[T]):
    def push(self, path: Path, item: T, cost: float) -> None: ...
    def head_cost(self) -> float: ...
    def pop(self) -> tuple[T, float]: ...
    def __len__(self) -> int: ...


class _Turn(Generic[T]):
    """A child queue and the credit its flow has left in the current round."""

    __slots__ = ("child", "deficit")

    def __init__(self, child: _Queue[T]) -> None:
        self.child, self.deficit = child, 0.0


class _Fifo(Generic[T]):
    def __init__(self) -> None:
        self.items: deque[tuple[T, float]] = deque()

    def push(self, path: Path, item: T, cost: float) -> None:
        self.items.append((item, cost))

    def head_cost(self) -> float:
        return self.items[0][1]

    def pop(self) -> tuple[T, float]:
        return self.items.popleft()

    def __len__(self) -> int:
        return len(self.items)


class _Drr(Generic[T]):
    """Deficit round-robin over children keyed by path[0]; the rest of the path goes to the child."""

    def __init__(self, depth: int, quantum: float):
        self.depth, self.quantum = depth, quantum
        self.children: OrderedDict[Hashable, _Turn[T]] = OrderedDict()  # in turn order
        self.size = 0

    def push(self, path: Path, item: T, cost: float) -> None:
        key = path[0]
        turn = self.children.get(key)
        if turn is None:
            child: _Queue[T] = _Drr(self.depth - 1, self.quantum) if self.depth > 1 else _Fifo()
            turn = self.children[key] = _Turn(child)
        turn.child.push(path[1:], item, cost)
        self.size += 1

    def head_cost(self) -> float:
        return next(iter(self.children.values())).child.head_cost()

    def pop(self) -> tuple[T, float]:
        while True:
            key, turn = next(iter(self.children.items()))
            child = turn.child
            if turn.deficit < child.head_cost():
                turn.deficit += self.quantum  # its turn begins
                if turn.deficit < child.head_cost():
                    self.children.move_to_end(key)
                    continue
            item, cost = child.pop()
            turn.deficit -= cost
            self.size -= 1
            if not len(child):
                del self.children[key]  # an idle flow keeps no credit
            elif turn.deficit < child.head_cost():
                self.children.move_to_end(key)  # its turn is over
            return item, cost

    def __len__(self) -> int:
        return self.size


class FairQueue(Generic[T]):
    """push(flow, item, cost) and pop() → the item whose flow's turn it is."""

    def __init__(self, quantum: float = 1.0):
        self._root: _Drr[T] = _Drr(2, quantum)

    def push(self, flow: Flow, item: T, cost: float = 1.0) -> None:
        self._root.push((flow.tenant, flow.batch), item, cost)

    def pop(self) -> T:
        if not len(self._root):
            raise IndexError("pop from an empty FairQueue")
        return self._root.pop()[0]

    def __len__(self) -> int:
        return len(self._root)
