"""The console's own settings (Qt-free): which server it uses, declared once.

`SETTINGS` is the schema (key, type, default, help) that both `DesktopSettings.load` and the
settings dialogs read; the values live in `settings.json` in the user data dir.  Secrets never
do: tokens go to the OS keyring.  `QSettings` is for UI state (window geometry) only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SETTINGS_FILE = "settings.json"


def user_data_dir() -> Path:
    """Where the console keeps its settings, replicas and the bundled server by default."""
    import platformdirs

    return Path(platformdirs.user_data_dir("aisha", appauthor=False))


ServerMode = Literal["bundled", "remote"]
MODES: tuple[ServerMode, ...] = ("bundled", "remote")


@dataclass(frozen=True, slots=True)
class Setting:
    key: str
    type: type
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "server_mode",
        str,
        "bundled",
        "bundled: start the local server in the user data dir; remote: use server_url",
    ),
    Setting("server_url", str, "", "URL of a remote AiSHA server (https://crm.example.org)"),
    Setting("last_email", str, "", "the email of the last sign-in (prefilled)"),
    Setting("remember_me", bool, True, "keep the sign-in in the OS keyring"),
    Setting("tenant_id", str, "", "the tenant a superadmin worked in last"),
)


@dataclass(frozen=True, slots=True)
class DesktopSettings:
    server_mode: ServerMode = "bundled"
    server_url: str = ""
    last_email: str = ""
    remember_me: bool = True
    tenant_id: str = ""

    @classmethod
    def load(cls, path: Path) -> DesktopSettings:
        """The settings in `path`; missing, unreadable or mistyped values take defaults."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            raw = {}
        values: dict[str, Any] = {}
        if isinstance(raw, dict):
            for setting in SETTINGS:
                value = raw.get(setting.key)
                if isinstance(value, setting.type):
                    values[setting.key] = value
        if values.get("server_mode") not in MODES:
            values.pop("server_mode", None)
        return cls(**values)

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old file or the new one)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")
        os.replace(temporary, path)

    def replace(self, **changes: Any) -> DesktopSettings:
        return dataclasses.replace(self, **changes)
