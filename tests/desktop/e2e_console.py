"""A real console for the end-to-end test, driven over stdin/stdout (JSON lines).

    python -m tests.desktop.e2e_console --data-dir DIR --email E --password P [--first-run]

It starts up exactly as `aisha` does (`Bootstrap`: the bundled server in DIR, started or
reused; the first-run wizard's answers or the sign-in's given here instead of typed), opens
the main window offscreen, prints `{"ready": ...}`, then answers one command per line:

- `{"op": "create_user", "email": ..., "password": ..., "role": ...}` (through the API)
- `{"op": "create", "entity": ..., "fields": {...}}`: New record, type into the editor, Save
- `{"op": "edit", "entity": ..., "id": ..., "fields": {...}}`: select the row, type, Save
- `{"op": "wait_row", "entity": ..., "field": ..., "value": ..., "timeout": s}`: until the
  view's table shows a row with that value (answers the record id and the milliseconds)
- `{"op": "quit"}`: close the window and shut down as a user closing it would.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import orjson

# as `aisha` does: the bundled server starts before the rest is imported
from aisha_desktop.__main__ import prestart_server
from aisha_desktop.local_server import LocalServer

if TYPE_CHECKING:
    from aisha_desktop.client import Session
    from aisha_desktop.first_run import FirstRun
    from aisha_desktop.signin import LoginRequest


class Answers:
    """What an operator would type: the first-run wizard on an empty server, else sign-in."""

    def __init__(self, email: str, password: str) -> None:
        self.email, self.password = email, password

    def status(self, text: str) -> None:
        pass

    async def first_run(self, setup: FirstRun, server_url: str) -> bool:
        from aisha_desktop.first_run import FirstRunForm

        await setup.complete(
            FirstRunForm(
                tenant_name="Two Consoles Ltd",
                first_name="First",
                last_name="Console",
                email=self.email,
                password=self.password,
                password_again=self.password,
            )
        )
        return True

    async def login(self, request: LoginRequest) -> Session | None:
        from aisha_desktop.bootstrap import StartupError
        from aisha_desktop.signin import LoginForm

        if request.message:
            raise StartupError(f"sign-in refused: {request.message}")
        return await request.attempt(LoginForm(request.url, self.email, self.password, False))


def say(**payload: Any) -> None:
    sys.stdout.write(orjson.dumps(payload).decode() + "\n")
    sys.stdout.flush()


async def commands() -> Any:
    """stdin lines, read in a thread so the Qt/asyncio loop keeps running."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()
    while (line := await queue.get()) is not None:
        if line.strip():
            yield orjson.loads(line)


async def drive(args: argparse.Namespace, local: LocalServer | None) -> int:
    from keyring.backends.fail import Keyring as NoKeyring

    from aisha_desktop.bootstrap import Bootstrap
    from aisha_desktop.views.main_window import MainWindow

    answers = Answers(args.email, args.password)
    no_keyring = NoKeyring()  # type: ignore[no-untyped-call]
    boot = Bootstrap(args.data_dir, answers, keyring_backend=no_keyring, local=local)
    context = await boot.run()
    window = MainWindow(context, search_delay_ms=10)
    window.resize(1200, 760)
    window.show()
    say(ready=True, server_url=context.server_url, tenant_id=context.tenant_id,
        server_pid=boot.local.server_pid if boot.local else None)  # fmt: skip
    try:
        async for command in commands():
            op = command["op"]
            try:
                if op == "quit":
                    break
                if op == "create_user":
                    body = {k: command[k] for k in ("email", "password", "role")}
                    body.update(first_name="Second", last_name="Console",
                                tenant_id=context.tenant_id)  # fmt: skip
                    made = await context.api.request("POST", "/api/users", json=body)
                    say(ok=True, result=made)
                elif op in ("create", "edit"):
                    view = window.open_entity(command["entity"])
                    if op == "create":
                        view.new_record()
                    elif not view.select_record(command["id"]):
                        raise LookupError(f"{command['id']} is not in the view")
                    for name, value in command["fields"].items():
                        view.editor.set_value(name, value)
                    if not await view.save():
                        raise RuntimeError(f"not saved: {view.feedback.text()}")
                    say(ok=True, id=view.record_id)
                elif op == "wait_row":
                    view = window.open_entity(command["entity"])
                    started = time.perf_counter()
                    deadline = started + float(command.get("timeout", 10))
                    while True:
                        model = view.model
                        found = next(
                            (model.record_id(r) for r in range(model.rowCount())
                             if (row := model.record_at(r)) is not None
                             and row.data.get(command["field"]) == command["value"]),
                            None,
                        )  # fmt: skip
                        if found is not None:
                            say(ok=True, id=found, ms=(time.perf_counter() - started) * 1000)
                            break
                        if time.perf_counter() > deadline:
                            raise TimeoutError(f"no {command['entity']} row with {command}")
                        await asyncio.sleep(0.02)
                else:
                    raise ValueError(f"unknown op {op!r}")
            except Exception as exc:  # the test reads the failure from the answer
                say(ok=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        window.close()
        await context.aclose()
    say(closed=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    local = prestart_server(args.data_dir)

    import qasync  # type: ignore[import-untyped]
    from PySide6.QtWidgets import QApplication

    from aisha_desktop.gc_guard import MainThreadCollector

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    collector = MainThreadCollector()  # as the console's own entry point
    collector.start()
    try:
        with loop:
            code: int = loop.run_until_complete(drive(args, local))
    finally:
        collector.stop()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
