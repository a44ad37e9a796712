"""The console collects cyclic garbage on the GUI thread only (`aisha_desktop.gc_guard`)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import QObject

from aisha_desktop.gc_guard import MainThreadCollector


@pytest.fixture
def python_collects() -> Iterator[None]:
    """The interpreter's own automatic collection, as in a console before the guard starts
    (the desktop tests' fixture turns it off around each test)."""
    gc.enable()
    try:
        yield
    finally:
        gc.disable()


def cycle_with_finaliser(deaths: list[int], payload: Any = None) -> weakref.ref[Any]:
    """A two-node reference cycle that only the cyclic collector can free; its death
    records the thread it died on."""

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    a.payload = payload  # type: ignore[attr-defined]
    weakref.finalize(a, lambda: deaths.append(threading.get_ident()))
    return weakref.ref(a)


def churn_on_a_worker() -> list[list[int]]:
    """Allocate enough containers on a worker thread to cross every generation's threshold
    several times over; they are kept (returned), so the counts stay over."""
    kept: list[list[int]] = []

    def work() -> None:
        kept.extend([i] for i in range(300_000))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return kept


def test_without_the_guard_a_worker_thread_collects_cycles(python_collects: None) -> None:
    # the hazard itself, shown with a plain Python cycle (a Qt object here could crash)
    gc.collect()
    deaths: list[int] = []
    ref = cycle_with_finaliser(deaths)
    churn_on_a_worker()
    assert ref() is None
    assert deaths and deaths[0] != threading.get_ident()


def test_with_the_guard_a_qt_object_in_a_cycle_dies_on_the_main_thread(
    python_collects: None, qtbot: Any
) -> None:
    collector = MainThreadCollector(interval_ms=3_600_000)  # checked by hand below
    collector.start(freeze=False)
    try:
        assert not gc.isenabled()
        deaths: list[int] = []
        qt_object = QObject()
        ref = cycle_with_finaliser(deaths, payload=qt_object)
        del qt_object
        kept = churn_on_a_worker()
        assert ref() is not None and deaths == []  # the worker collected nothing

        assert collector.check() == 0  # young objects over their threshold: collected here
        assert ref() is None
        assert deaths == [threading.get_ident()]  # died here, on the main thread
        assert collector.collections == [1, 0, 0]
        assert len(kept) == 300_000
    finally:
        collector.stop()
    assert gc.isenabled()  # automatic collection given back


def test_the_qt_object_of_a_collected_cycle_is_destroyed(python_collects: None) -> None:
    collector = MainThreadCollector(interval_ms=3_600_000)
    collector.start(freeze=False)
    try:
        deaths: list[int] = []
        holder = QObject()
        child = QObject()  # no parent: Python owns it, its wrapper's death destroys it
        ref = cycle_with_finaliser(deaths, payload=child)
        probe = weakref.ref(child)
        destroyed: list[bool] = []
        child.destroyed.connect(lambda: destroyed.append(True))
        del child
        gc.collect()
        assert ref() is None and probe() is None and destroyed == [True]
        assert shiboken6.isValid(holder)
    finally:
        collector.stop()


def test_the_timer_checks_the_thresholds(python_collects: None, qtbot: Any) -> None:
    collector = MainThreadCollector(interval_ms=10)
    collector.start(freeze=False)
    try:
        assert collector.active
        gc.collect()  # counts back to zero
        assert collector.check() is None  # nothing over its threshold
        kept = [[i] for i in range(gc.get_threshold()[0] * 3)]
        qtbot.waitUntil(lambda: collector.collections[0] + collector.collections[1] >= 1)
        assert len(kept) > 0
    finally:
        collector.stop()
    assert not collector.active and gc.isenabled()


def test_stop_leaves_collection_off_when_it_was_off_before() -> None:
    assert not gc.isenabled()  # the desktop tests' fixture turned it off
    collector = MainThreadCollector()
    collector.start(freeze=False)
    collector.start(freeze=False)  # a second start changes nothing
    collector.stop()
    assert not gc.isenabled()
    collector.stop()  # and a second stop neither
    assert not gc.isenabled()


def test_start_freezes_what_is_loaded(python_collects: None) -> None:
    collector = MainThreadCollector()
    before = gc.get_freeze_count()
    collector.start()
    try:
        assert gc.get_freeze_count() > before
    finally:
        collector.stop()
        gc.unfreeze()
