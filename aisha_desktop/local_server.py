"""The bundled `aisha-server`: start it, find and share a running one, stop it (Qt-free).

Process tree::

    aisha (console) --spawns--> keeper: python -m aisha_desktop.local_server (own session)
                                   --spawns--> python -m aisha_server serve  (dies with keeper)

Who keeps the server alive is decided by file locks, which the kernel drops when a process
dies however it dies (SIGKILL included), so nothing stale survives a crash:

- every console using the bundled server holds a *shared* flock on `consoles.lease`;
- the keeper waits for an *exclusive* flock on it, which it gets once the last console has
  let go (normal exit or death), and then stops the server: SIGTERM, SIGKILL after a grace
  period.  The server gets `PR_SET_PDEATHSIG` (Linux), so killing the keeper kills it too;
- the server's own flock on `server.lock` (see `aisha_server.cli.ServerLock`) says whether a
  server runs on the data dir, and records its pid and URL, which is how a second console
  finds and reuses it;
- `start.lock` serialises consoles deciding whether to start one.

So a second console reuses a running server, the server outlives the console that started
it while another still uses it, and is stopped when the last one leaves.  The server's
output goes to `server.log` in the data dir; its last lines explain a failed start.  The
bundled server gets a random JWT secret kept in the data dir's `.env` (mode 0600), and none
of the console's own server configuration (DATABASE_URL, PORT, ...) from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

LEASE = "consoles.lease"
START_LOCK = "start.lock"
SERVER_LOCK = "server.lock"  # written by aisha_server.cli.ServerLock
LOG = "server.log"
ENV_FILE = ".env"
# What a console's environment must not hand the bundled server: it uses its own data dir,
# a free port on 127.0.0.1 and the secret kept in the data dir.
SCRUBBED_ENV = ("DATABASE_URL", "AISHA_DATA_DIR", "HOST", "PORT", "JWT_SECRET")
PR_SET_PDEATHSIG = 1
_RECORD = re.compile(r"pid (\d+), (https?://\S+)")


class LocalServerError(Exception):
    """The bundled server could not be started (or reached); `log_tail` holds its last
    output lines."""

    def __init__(self, message: str, log_tail: Sequence[str] = ()) -> None:
        self.message = message
        self.log_tail = list(log_tail)
        text = message
        if self.log_tail:
            text += "\nLast lines of the server's output:\n" + "\n".join(
                f"  {line}" for line in self.log_tail
            )
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server holding the data dir's lock; `url` is None until it listens."""

    pid: int | None
    url: str | None


def running_server(data_dir: Path) -> RunningServer | None:
    """The server serving `data_dir`, or None when no process holds its lock.

    Probing takes the lock shared for an instant, so callers hold `start.lock` (a server
    starting at that instant would take the probe for a running server and give up)."""
    path = data_dir / SERVER_LOCK
    try:
        handle = open(path)  # noqa: SIM115 - closed below, after the probe
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            match = _RECORD.search(handle.read())
            if match is None:
                return RunningServer(pid=None, url=None)
            return RunningServer(pid=int(match.group(1)), url=match.group(2))
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None


def log_tail(data_dir: Path, lines: int = 12) -> list[str]:
    """The last `lines` non-empty lines of the server's output."""
    try:
        with open(data_dir / LOG, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            text = handle.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def ensure_secret(data_dir: Path) -> None:
    """A strong JWT secret in `<data_dir>/.env`, made once (the server reads that file)."""
    path = data_dir / ENV_FILE
    if path.is_file():
        for line in path.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "JWT_SECRET" and len(value.strip()) >= 32:
                return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write("# made by the AiSHA console for its bundled server\n")
        handle.write(f"JWT_SECRET={secrets.token_urlsafe(48)}\n")
    os.chmod(path, 0o600)


def _lock_file(path: Path) -> IO[str]:
    """A lock file, opened (created if missing) without truncating what it records."""
    return open(path, "a+")


async def _flock(handle: IO[str], mode: int, within: float, what: str) -> None:
    """Take a flock without blocking the event loop (polls; a holder is a short step)."""
    deadline = time.monotonic() + within
    while True:
        try:
            fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LocalServerError(f"Timed out waiting for {what}") from None
            await asyncio.sleep(0.05)


class LocalServer:
    """The console's share of the bundled server on `data_dir`.

    `await start()` returns the URL of a healthy server (reused or started); `await stop()`
    lets go of it, and waits until the server is gone when this was the last console.
    `started` says whether this console started it."""

    def __init__(
        self,
        data_dir: Path,
        *,
        startup_timeout: float = 60.0,
        grace: float = 5.0,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.startup_timeout = startup_timeout
        self.grace = grace
        self.python = python
        self._env = dict(os.environ if env is None else env)
        self.url: str | None = None
        self.server_pid: int | None = None
        self.started = False
        self._lease: IO[str] | None = None
        self._keeper_pid: int | None = None
        self._prestarted: tuple[IO[str], IO[str]] | None = None  # start lock, lease

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def keeper_pid(self) -> int | None:
        return self._keeper_pid

    # -- start -------------------------------------------------------------------------------
    def prestart(self) -> bool:
        """Spawn the keeper at once when no server runs, without waiting for it: called
        before the console imports Qt, so the server starts on the other core meanwhile;
        `start()` then waits for it.  False when this did nothing (a server runs, or another
        console is deciding): `start()` does the usual."""
        if self.url is not None or self._prestarted is not None:
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        gate = _lock_file(self.data_dir / START_LOCK)
        lease = _lock_file(self.data_dir / LEASE)
        try:
            # held until start() is done, so no other console starts a second server
            fcntl.flock(gate.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(lease.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            if running_server(self.data_dir) is not None:
                raise BlockingIOError  # reused in start(), nothing to do early
            (self.data_dir / SERVER_LOCK).write_text("")
            self._spawn_keeper()
        except BlockingIOError:
            lease.close()
            gate.close()
            return False
        except BaseException:
            lease.close()
            gate.close()
            raise
        self.started = True
        self._prestarted = (gate, lease)
        return True

    async def start(self) -> str:
        if self.url is not None:
            return self.url
        if self._prestarted is not None:
            gate, lease = self._prestarted
            self._prestarted = None
            with gate:
                return await self._started(lease)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _lock_file(self.data_dir / START_LOCK) as gate:
            await _flock(gate, fcntl.LOCK_EX, self.startup_timeout, "another console's start")
            lease = _lock_file(self.data_dir / LEASE)  # held until stop()
            try:
                # shared with other consoles; only a keeper stopping its server holds it
                # exclusively, and then we wait for that server to be gone
                await _flock(lease, fcntl.LOCK_SH, self.startup_timeout, "the old server to stop")
                found = running_server(self.data_dir)
                if found is None:
                    # the last server's record stays in its lock file: not this one's URL
                    (self.data_dir / SERVER_LOCK).write_text("")
                    self._spawn_keeper()
                    self.started = True
            except BaseException:
                lease.close()
                await self._abandon_keeper()
                raise
            return await self._started(lease)

    async def _started(self, lease: IO[str]) -> str:
        """Wait for the server (started or found) to answer; the lease is ours from now."""
        try:
            url = await self._wait_listening()
            await self._wait_healthy(url)
        except BaseException:
            lease.close()
            await self._abandon_keeper()
            raise
        self._lease = lease
        self.url = url
        return url

    def _spawn_keeper(self) -> None:
        ensure_secret(self.data_dir)
        env = {k: v for k, v in self._env.items() if k not in SCRUBBED_ENV}
        env["PYTHONUNBUFFERED"] = "1"
        server = [
            self.python, "-m", "aisha_server", "serve", "--host", "127.0.0.1", "--port", "0",
            "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        keeper = [
            self.python, "-m", "aisha_desktop.local_server",
            "--lease", str(self.data_dir / LEASE), "--grace", str(self.grace), "--", *server,
        ]  # fmt: skip
        # posix_spawn rather than Popen: the keeper may outlive this console (another one
        # still uses the server), and a Popen object would complain about it when collected
        log_path = str(self.data_dir / LOG)
        self._keeper_pid = os.posix_spawn(
            self.python,
            keeper,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,  # not in the console's process group: a Ctrl+C there is not ours
        )

    def _keeper_exit(self) -> int | None:
        """The keeper's exit status once it ended (reaped here), else None."""
        pid = self._keeper_pid
        if pid is None:
            return None
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            self._keeper_pid = None
            return -1
        if done == 0:
            return None
        self._keeper_pid = None
        return os.waitstatus_to_exitcode(status)

    async def _wait_listening(self) -> str:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.started:
                code = self._keeper_exit()
                if code is not None:
                    raise LocalServerError(
                        f"The bundled server stopped while starting (exit status {code})",
                        log_tail(self.data_dir),
                    )
            found = running_server(self.data_dir)
            if found is not None and found.url is not None:
                self.server_pid = found.pid
                return found.url
            if found is None and not self.started:
                raise LocalServerError("The running bundled server went away")
            if time.monotonic() >= deadline:
                raise LocalServerError(
                    f"The bundled server did not start listening within {self.startup_timeout:g} s",
                    log_tail(self.data_dir),
                )
            await asyncio.sleep(0.05)

    async def _wait_healthy(self, url: str) -> None:
        import httpx

        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                try:
                    response = await http.get("/health")
                    if response.status_code == 200 and response.json().get("status") == "ok":
                        return
                    last = f"HTTP {response.status_code}"
                except (httpx.HTTPError, ValueError) as exc:
                    last = str(exc) or type(exc).__name__
                if self.started and self._keeper_exit() is not None:
                    break
                await asyncio.sleep(0.1)
        raise LocalServerError(
            f"The bundled server at {url} is not healthy ({last})", log_tail(self.data_dir)
        )

    async def _abandon_keeper(self) -> None:
        """After a failed start: stop the keeper we spawned (it stops the server)."""
        if self._keeper_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._keeper_pid, signal.SIGTERM)
            await self._reap_keeper(self.grace + 5)
        self.started = False

    async def _reap_keeper(self, within: float) -> None:
        """Wait for the keeper to end; SIGKILL it after `within` seconds."""
        deadline = time.monotonic() + within
        killed = False
        while self._keeper_pid is not None and self._keeper_exit() is None:
            if time.monotonic() >= deadline and not killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._keeper_pid, signal.SIGKILL)
                killed = True
            await asyncio.sleep(0.05)

    # -- stop --------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Let go of the server.  When no other console uses it, its keeper stops it: wait
        until it is gone (so the next start finds the data dir free)."""
        if self._prestarted is not None:  # never waited for: let go all the same
            gate, self._lease = self._prestarted
            self._prestarted = None
            gate.close()
        lease = self._lease
        if lease is None:
            return
        self._lease, self.url = None, None
        with _lock_file(self.data_dir / START_LOCK) as gate:
            await _flock(gate, fcntl.LOCK_EX, self.grace + 10, "another console's start")
            try:
                fcntl.flock(lease.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                last = True
            except BlockingIOError:
                last = False
            lease.close()
            if not last:
                return  # another console still uses it; our keeper (if any) stays with it
            deadline = time.monotonic() + self.grace + 10
            while running_server(self.data_dir) is not None:
                if time.monotonic() >= deadline:
                    raise LocalServerError(
                        "The bundled server did not stop", log_tail(self.data_dir)
                    )
                await asyncio.sleep(0.05)
            if self._keeper_pid is not None:
                await self._reap_keeper(self.grace + 5)


# -- the keeper (a process of its own) ---------------------------------------------------------


def _death_signal_hook(parent: int) -> Callable[[], None] | None:
    """A preexec hook making the child get SIGTERM when `parent` dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
    prctl = libc.prctl

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the hook ran
            os._exit(1)

    return hook


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def keep(argv: Sequence[str] | None = None) -> int:
    """Run the server until the last console lets go of the lease (or a signal)."""
    parser = argparse.ArgumentParser(prog="aisha-desktop-keeper")
    parser.add_argument("--lease", type=Path, required=True)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no server command given")
    stop = False

    def stop_now(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop_now)
    os.chdir(args.lease.parent)  # no stray .env from wherever the console was started
    proc = subprocess.Popen(command, preexec_fn=_death_signal_hook(os.getpid()))
    with open(args.lease, "a+") as lease:
        while not stop:
            code = proc.poll()
            if code is not None:
                return code
            try:
                fcntl.flock(lease.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break  # every console let go; held until the server is gone
            except BlockingIOError:
                time.sleep(0.1)
        return _terminate(proc, args.grace)


if __name__ == "__main__":
    raise SystemExit(keep())
