"""`aisha`: the desktop console on a qasync loop (Qt and asyncio on one thread).

`aisha` starts up through `bootstrap()` (bundled server or remote, first run or sign-in)
and opens the main window; `aisha --self-test` runs the same start-up on a throwaway data
dir with scripted answers, opens the main window, creates and edits a record through the
sync engine, checks the server has it, and exits 0 (1 with a message on any failure).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

# Only what starting the bundled server needs is imported up front: the rest (Qt, the
# client...) loads while the server starts (see `prestart_server`).
from aisha_desktop.local_server import LocalServer, LocalServerError
from aisha_desktop.settings import SETTINGS_FILE, DesktopSettings, user_data_dir

if TYPE_CHECKING:
    from aisha_desktop.client import Session
    from aisha_desktop.context import AppContext
    from aisha_desktop.first_run import FirstRun
    from aisha_desktop.signin import LoginRequest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisha", description="AiSHA desktop console")
    parser.add_argument(
        "--data-dir", type=Path, help="where settings, replicas and the bundled server live"
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="start a bundled server on a throwaway data dir, set it up, sign in, open the "
        "main window, create and edit a record; exit 0 when all worked",
    )
    return parser


def main_window_class() -> Any:
    """The main window, or the placeholder while `views/main_window.py` is not there."""
    try:
        from aisha_desktop.views.main_window import MainWindow  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from aisha_desktop.views.placeholder import PlaceholderWindow

        return PlaceholderWindow
    return MainWindow


async def _closed(window: Any) -> str | None:
    """Until the user closes `window` (None), or a superadmin picks another tenant in it
    (that tenant's id)."""
    from PySide6.QtWidgets import QApplication

    future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    app = QApplication.instance()
    assert isinstance(app, QApplication)

    def closed() -> None:
        if not future.done():
            future.set_result(None)

    def switch(tenant_id: str) -> None:
        if not future.done():
            future.set_result(tenant_id)

    app.lastWindowClosed.connect(closed)
    requested = getattr(window, "tenant_switch_requested", None)
    if requested is not None:
        requested.connect(switch)
    try:
        return await future
    finally:
        app.lastWindowClosed.disconnect(closed)
        if requested is not None:
            requested.disconnect(switch)


async def _switch_tenant(context: AppContext, window: Any, tenant_id: str) -> tuple[Any, Any]:
    """Reopen the console on `tenant_id` (a new window on the new context, then the old one
    closes); on a refusal the message is shown and the console stays where it was."""
    from PySide6.QtWidgets import QMessageBox

    from aisha_desktop.bootstrap import TenantSwitchFailed
    from aisha_desktop.client import ClientError
    from aisha_desktop.dialogs.common import describe
    from aisha_desktop.dialogs.prompts import finished

    assert context.switch is not None
    window.setEnabled(False)
    problem = ""
    try:
        new = await context.switch(tenant_id)
    except ClientError as exc:  # refused before anything closed
        new, problem = None, describe(exc)
    except TenantSwitchFailed as exc:  # back on the previous tenant, in a new context
        new, problem = exc.context, str(exc)
    replacement = window
    if new is not None:
        replacement = main_window_class()(new)
        replacement.show()
        window.close()
    replacement.setEnabled(True)
    if problem:
        box = QMessageBox(QMessageBox.Icon.Warning, "Switch tenant", f"Could not switch: {problem}")
        await finished(box)
    return new or context, replacement


def prestart_server(data_dir: Path) -> LocalServer | None:
    """Begin starting the bundled server before the console imports Qt (the two start in
    parallel on a multi-core machine); `Bootstrap` waits for it."""
    if DesktopSettings.load(data_dir / SETTINGS_FILE).server_mode != "bundled":
        return None
    local = LocalServer(data_dir / "server")
    try:
        local.prestart()
    except OSError:
        return None  # `Bootstrap` tries again and explains what is wrong
    return local


async def run_gui(data_dir: Path, local: LocalServer | None = None) -> int:
    from PySide6.QtWidgets import QMessageBox

    from aisha_desktop.bootstrap import Bootstrap, Cancelled, StartupError
    from aisha_desktop.client import ClientError
    from aisha_desktop.dialogs.prompts import DialogPrompts, finished

    prompts = DialogPrompts()
    try:
        context = await Bootstrap(data_dir, prompts, local=local).run()
    except Cancelled:
        return 0
    except (LocalServerError, StartupError, ClientError) as exc:
        prompts.close()
        box = QMessageBox(QMessageBox.Icon.Critical, "AiSHA could not start", str(exc))
        await finished(box)
        return 1
    prompts.close()
    try:
        window = main_window_class()(context)
        window.show()
        while (tenant_id := await _closed(window)) is not None and context.switch is not None:
            context, window = await _switch_tenant(context, window, tenant_id)
    finally:
        await context.aclose()
    return 0


# -- self-test -------------------------------------------------------------------------------

SELF_TEST_PASSWORD = "Self-test-" + uuid.uuid4().hex[:12]


class ScriptedPrompts:
    """The self-test's answers: set up the empty server; nothing else may be asked."""

    def status(self, text: str) -> None:
        pass

    async def first_run(self, setup: FirstRun, server_url: str) -> bool:
        from aisha_desktop.first_run import FirstRunForm

        await setup.complete(
            FirstRunForm(
                tenant_name="Self-test Ltd",
                first_name="Self",
                last_name="Test",
                email="self-test@aisha.test",
                password=SELF_TEST_PASSWORD,
                password_again=SELF_TEST_PASSWORD,
            )
        )
        return True

    async def login(self, request: LoginRequest) -> Session | None:
        from aisha_desktop.bootstrap import StartupError

        raise StartupError(f"unexpected sign-in prompt ({request.message or 'start-up'})")


class Steps:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        self.step_started = self.started

    def begin(self, text: str) -> None:
        self.step_started = time.monotonic()
        print(f"self-test: {text} ...", end="", file=self.out, flush=True)

    def ok(self, note: str = "") -> None:
        took = time.monotonic() - self.step_started
        print(f" ok ({took:.2f} s){' ' + note if note else ''}", file=self.out, flush=True)


async def self_test(out: TextIO = sys.stdout) -> int:
    from keyring.backends.fail import Keyring as NoKeyring

    from aisha_desktop.bootstrap import Bootstrap

    steps = Steps(out)
    with tempfile.TemporaryDirectory(prefix="aisha-self-test-") as tmp:
        # never the user's keyring: a store that has none
        boot = Bootstrap(
            Path(tmp),
            ScriptedPrompts(),
            keyring_backend=NoKeyring(),  # type: ignore[no-untyped-call]
        )
        context: AppContext | None = None
        try:
            steps.begin("start the bundled server, set it up, sign in")
            context = await boot.run()
            assert boot.local is not None and boot.local.started
            steps.ok(f"{context.server_url}, tenant {context.tenant_id}")

            steps.begin("open the main window")
            window = main_window_class()(context)
            window.show()
            await asyncio.sleep(0.1)  # let Qt lay it out and paint (on the loop, not nested)
            if not window.isVisible():
                raise AssertionError("the main window is not visible")
            steps.ok(type(window).__name__)

            engine, api = context.engine, context.api
            steps.begin("create a contact through the sync engine")
            row = await engine.create(
                "contacts",
                {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@aisha.test"},
            )
            record_id = str(row["id"])
            await engine.sync_now()
            stored = await api.get_record("contacts", record_id)
            if stored.get("last_name") != "Lovelace":
                raise AssertionError(f"the server holds {stored!r}")
            steps.ok(record_id)

            steps.begin("edit it")
            await engine.update("contacts", record_id, {"last_name": "King"})
            await engine.sync_now()
            stored = await api.get_record("contacts", record_id)
            local = context.replica.get("contacts", record_id)
            if stored.get("last_name") != "King" or stored.get("version") != 2:
                raise AssertionError(f"the server holds {stored!r}")
            if local is None or local.pending or local.data.get("last_name") != "King":
                raise AssertionError(f"the replica holds {local!r}")
            steps.ok(f"version {stored['version']}")

            steps.begin("close and stop the server")
            window.close()
            server_pid = boot.local.server_pid if boot.local is not None else None
            closing, context = context, None
            await closing.aclose()
            if server_pid is not None and _alive(server_pid):
                raise AssertionError(f"the bundled server (pid {server_pid}) still runs")
            steps.ok()
        except Exception as exc:
            print(  # noqa: T201 - the self-test's verdict is for the terminal
                f"\nself-test FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True
            )
            return 1
        finally:
            if context is not None:
                await context.aclose()
            else:
                await boot.aclose()
    print(f"self-test passed in {time.monotonic() - steps.started:.1f} s", file=out, flush=True)
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        return True


# -- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if args.self_test and headless and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    data_dir = args.data_dir.expanduser().resolve() if args.data_dir else user_data_dir()
    local = None if args.self_test else prestart_server(data_dir)

    import qasync  # type: ignore[import-untyped]
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from aisha_desktop.gc_guard import MainThreadCollector

    app = QApplication(sys.argv[:1])
    app.setApplicationName("AiSHA")
    app.setQuitOnLastWindowClosed(False)  # the loop ends after the cleanup, not before
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    # SIGTERM/SIGINT close the windows (then the usual cleanup); the timer lets Python run
    # its signal handlers while Qt's loop is in C++
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: app.closeAllWindows())
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)
    ticker.start(250)
    # replica calls run on worker threads: cyclic garbage (Qt objects included) is
    # collected on this thread only, or Qt objects could die on a worker and crash the process
    collector = MainThreadCollector()
    collector.start()
    work = self_test() if args.self_test else run_gui(data_dir, local)
    try:
        with loop:
            code: int = loop.run_until_complete(work)
    finally:
        collector.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
