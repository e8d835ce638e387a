import gc
import weakref
from collections.abc import Iterator

import pytest

from lagwatch.heap import Heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects cycles as usual


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_a_settled_heap_is_frozen_and_its_cycles_wait_for_the_hourly_sweep() -> None:
    heap = Heap(sweep_every_s=3600)
    alive = cycle()  # garbage already, but only the cycle collector can free it
    heap.settle(now=1000.0)
    assert gc.get_freeze_count() > 0
    gc.collect()
    assert alive() is not None  # frozen: full collections leave it alone
    heap.settle(now=4599.0)
    assert alive() is not None  # the sweep is not due yet
    heap.settle(now=4600.0)
    assert alive() is None  # swept
    assert gc.get_freeze_count() > 0  # and frozen again


def test_objects_without_cycles_are_freed_at_once_when_frozen() -> None:
    heap = Heap()
    lone = Node()
    gone = weakref.ref(lone)
    heap.settle(now=0.0)
    del lone
    assert gone() is None
