"""`aisha --self-test` as installers and CI run it: a subprocess that must exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(180)
def test_self_test_passes() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "aisha_desktop", "--self-test"],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("set it up, sign in ... ok", "open the main window ... ok",
                 "create a contact", "edit it ... ok", "close and stop the server ... ok"):  # fmt: skip
        assert step in done.stdout
    assert "self-test passed" in done.stdout


@pytest.mark.timeout(60)
def test_self_test_fails_loudly_when_the_server_cannot_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # a python that cannot run the server: the keeper starts, the server dies at once
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$2" = "aisha_server" ]; then echo "no server here" >&2; exit 3; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    code = (
        "import sys; sys.executable = sys.argv[1]; "
        "from aisha_desktop.__main__ import main; raise SystemExit(main(['--self-test']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fake)], capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 1
    assert "self-test FAILED" in done.stderr
    assert "no server here" in done.stderr  # the server's own last words
