"""Start-up and settings dialogs: first-run wizard, sign-in, Settings -> Connection, and
`DialogPrompts`, the dialogs' side of `bootstrap.Prompts`."""

from aisha_desktop.dialogs.connection import ConnectionDialog, test_connection
from aisha_desktop.dialogs.first_run import FirstRunDialog
from aisha_desktop.dialogs.login import LoginDialog
from aisha_desktop.dialogs.prompts import DialogPrompts

__all__ = [
    "ConnectionDialog",
    "DialogPrompts",
    "FirstRunDialog",
    "LoginDialog",
    "test_connection",
]
