"""Desktop tests never touch the user's own UI state: `QSettings()` (saved views, window
state) goes to an INI file in this session's temporary directory.

They also collect garbage on the main thread only, as the console does
(`aisha_desktop.gc_guard`): a Qt object left in a reference cycle by one test (a closed
qasync loop's timers, a dialog's widgets) must not be destroyed by a collection that happens
to start on a worker thread (a replica call, a SQLite writer) in a later test: Qt objects
die on the thread that owns them, or the process may crash."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session", autouse=True)
def private_ui_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield


@pytest.fixture(autouse=True)
def collect_on_the_main_thread() -> Iterator[None]:
    """No collection during the test; at its end (after its other fixtures) the young
    generations are collected here: everything the test made is among them, as nothing was
    collected (so promoted) meanwhile.  A full collection is run when the interpreter's
    rule would have (every tenth), and after the last desktop test (below)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        counts, thresholds = gc.get_count(), gc.get_threshold()
        gc.collect(2 if counts[2] > thresholds[2] else 1)
        if enabled:
            gc.enable()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    if nextitem is None or HERE not in nextitem.path.parents:
        gc.collect()  # leaving the desktop tests: no Qt garbage goes on to the others
