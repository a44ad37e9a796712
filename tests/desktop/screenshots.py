"""Where desktop tests render their pictures: docs/screenshots/ when AISHA_SCREENSHOTS=1
(refresh the pictures the README and docs show: `AISHA_SCREENSHOTS=1 scripts/test.sh
tests/desktop`), else a temporary directory, so a test run never changes the checkout."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot_dir() -> Path:
    if os.environ.get("AISHA_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        return DOCS
    return Path(tempfile.mkdtemp(prefix="aisha-shots-"))
