"""Desktop tests never touch the user's own UI state: `QSettings()` (saved views, window
state) goes to an INI file in this session's temporary directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QSettings


@pytest.fixture(scope="session", autouse=True)
def private_ui_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield
