"""Dialog tests drive a qasync loop (the console's own) from sync tests, and a real bundled
server where the server's answers matter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import qasync  # type: ignore[import-untyped]
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from tests.desktop.screenshots import screenshot_dir

SCREENSHOTS = screenshot_dir()
T = TypeVar("T")


class Loop:
    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def run(self, work: Awaitable[T]) -> T:
        result: T = self.loop.run_until_complete(work)
        return result

    def until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        async def wait() -> None:
            async with asyncio.timeout(timeout):
                while not predicate():  # noqa: ASYNC110 - a widget state, no event to await
                    await asyncio.sleep(0.02)

        self.run(wait())


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[Loop]:
    qapp.setQuitOnLastWindowClosed(False)  # a closing dialog must not stop the loop
    loop = qasync.QEventLoop(qapp, already_running=False)
    asyncio.set_event_loop(loop)
    try:
        yield Loop(loop)
    finally:
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        asyncio.set_event_loop(None)


def screenshot(widget: QWidget, name: str) -> Path:
    widget.adjustSize()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert widget.grab().save(str(path))
    return path


def banner_text(label: QLabel) -> str:
    """What a banner says ("" while it is hidden)."""
    return "" if label.isHidden() else str(label.text())
