"""End to end: two real console processes on one machine, sharing the bundled server the
first one started (the second reuses it).  Each signs in as its own user with its own
replica; a record created in one console's view appears in the other's, and an edit made
there comes back.  Closing both stops the server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

PASSWORD = "Two-consoles-1"


class Console:
    def __init__(self, data_dir: Path, email: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env["QT_QPA_PLATFORM"] = "offscreen"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.desktop.e2e_console", "--data-dir", str(data_dir),
             "--email", email, "--password", PASSWORD],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        self.ready = self.answer()
        assert self.ready.get("ready"), self.ready

    def answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            assert self.process.stderr is not None
            raise AssertionError(f"console exited: {self.process.stderr.read()[-3000:]}")
        answer: dict[str, Any] = orjson.loads(line)
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(command).decode() + "\n")
        self.process.stdin.flush()
        answer = self.answer()
        assert answer.get("ok"), answer
        return answer

    def quit(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write('{"op": "quit"}\n')
            self.process.stdin.flush()
            assert self.answer() == {"closed": True}
            assert self.process.wait(timeout=30) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.timeout(240)
def test_an_edit_in_one_console_appears_in_the_other(tmp_path: Path) -> None:
    first = Console(tmp_path, "first@two.test")  # empty data dir: starts the server, first run
    second: Console | None = None
    try:
        pid = first.ready["server_pid"]
        assert pid and alive(pid)
        first.ask(op="create_user", email="second@two.test", password=PASSWORD, role="admin")
        second = Console(tmp_path, "second@two.test")  # signs in on the running server
        assert second.ready["server_url"] == first.ready["server_url"]
        assert second.ready["tenant_id"] == first.ready["tenant_id"]

        made = first.ask(op="create", entity="contacts",
                         fields={"first_name": "Grace", "last_name": "Hopper",
                                 "email": "grace@two.test"})  # fmt: skip
        seen = second.ask(op="wait_row", entity="contacts", field="last_name",
                          value="Hopper", timeout=15)  # fmt: skip
        assert seen["id"] == made["id"]

        second.ask(op="edit", entity="contacts", id=made["id"], fields={"last_name": "Murray"})
        back = first.ask(op="wait_row", entity="contacts", field="last_name",
                         value="Murray", timeout=15)  # fmt: skip
        assert back["id"] == made["id"]
        # a console that opens afterwards reads the same record from the server
        first.quit()
        assert alive(pid)  # the second console still uses the server
        second.quit()
        deadline = time.monotonic() + 20
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), "the last console out must stop the bundled server"
    finally:
        first.kill()
        if second is not None:
            second.kill()
