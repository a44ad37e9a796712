"""Helpers the HTTP benchmarks share: starting servers as child processes, CPU pinning, the
wrk driver (one URL, or many URLs and headers through a Lua script), percentiles, the machine
description and the generated blocks of docs/BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"
JWT_SECRET = "bench-" + "s" * 58  # the benchmarks' servers and the tokens they mint


def pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


@dataclass
class Measurement:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us: float = 0.0  # server CPU time per request: immune to other load on the machine
    error_kinds: str = ""  # wrk's own words for the errors ("Non-2xx ...", "Socket errors ...")


@dataclass
class Target:
    key: str
    label: str
    url: str
    pid: int
    headers: dict[str, str] = field(default_factory=dict)
    rounds: list[Measurement] = field(default_factory=list)
    # a wrk Lua script that chooses each request (many URLs/headers); `url` is then the base
    script: Path | None = None

    def median(self) -> Measurement:
        ordered = sorted(self.rounds, key=lambda m: m.rps)
        return ordered[len(ordered) // 2]


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    output: list[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """`argv` run on one CPU (taskset; not preexec_fn, which is unsafe once threads run)."""
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def paired_ratio(target: Target, baseline: Target) -> float:
    """Median over rounds of target/baseline throughput, each pair measured back to back."""
    return statistics.median(
        t.rps / b.rps for t, b in zip(target.rounds, baseline.rounds, strict=True)
    )


def start_server(
    argv: list[str], *, env: dict[str, str], cwd: Path, cpu: int | None, timeout: float = 60
) -> Server:
    process = subprocess.Popen(
        pinned(argv, cpu),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + timeout
    port = None
    while port is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("server did not start:\n" + "".join(output))
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            output.append(line)
            match = re.search(r"\(port (\d+)\)", line)
            if match:
                port = int(match.group(1))

    def drain() -> None:  # keep the pipe from filling up and stalling the server
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return Server(process, port, output)


def server_env(database_url: str | None = None) -> dict[str, str]:
    """The environment of a benchmarked `aisha-server`: this checkout, the benchmarks' JWT
    secret, rate limits out of the way, quiet logs, no SMTP/Redis, the database named."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AISHA_", "DATABASE_URL"))},
        "PYTHONPATH": str(REPO),
        "JWT_SECRET": JWT_SECRET,
        "RATE_LIMIT_MAX": "1000000000",
        "AUTH_RATE_LIMIT_MAX": "1000000000",
        "LOG_LEVEL": "warn",
        "ENABLE_PERFORMANCE_LOGGING": "false",
        "SMTP_HOST": "",
        "REDIS_URL": "",
        "PRODUCTION_READONLY": "false",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def start_aisha_server(
    data_dir: Path, *, database_url: str | None = None, cpu: int | None = None
) -> Server:
    """`aisha-server serve --port 0` on `data_dir` (and `database_url`, if any)."""
    return start_server(
        [sys.executable, "-m", "aisha_server", "serve", "--port", "0", "--data-dir",
         str(data_dir)],
        env=server_env(database_url),
        cwd=data_dir,
        cpu=cpu,
    )  # fmt: skip


def run_wrk(target: Target, *, connections: int, duration: float, cpu: int | None) -> Measurement:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    if target.script is not None:
        argv += ["-s", str(target.script)]
    argv.append(target.url)
    done = subprocess.run(pinned(argv, cpu), capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_wrk_script(path: Path, requests: Sequence[tuple[str, dict[str, str]]]) -> Path:
    """A wrk script that sends GET `path` with `headers` for each (path, headers) in turn,
    round-robin, each connection starting at a different offset."""
    entries = []
    for request_path, headers in requests:
        pairs = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
        entries.append(f"  {{{_lua_string(request_path)}, {{{pairs}}}}},")
    path.write_text(
        "\n".join(
            [
                "local specs = {",
                *entries,
                "}",
                "local prepared = {}",
                "local counter = 0",
                "function init(args)",
                "  for i, spec in ipairs(specs) do",
                '    prepared[i] = wrk.format("GET", spec[1], spec[2])',
                "  end",
                "end",
                "function request()",
                "  counter = counter + 1",
                "  return prepared[(counter - 1) % #prepared + 1]",
                "end",
                "",
            ]
        )
    )
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> Measurement:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    kinds = "; ".join(
        m.group(0).strip()
        for m in (non2xx, socket_errors)
        if m is not None and any(int(g) for g in m.groups())
    )
    return Measurement(rps, p50, p99, total, errors, error_kinds=kinds)


def reference_loop_seconds() -> float:
    """Seconds for a fixed pure-Python loop of 10 million additions, best of three: how fast
    this machine's CPU runs CPython, so that figures taken on different machines (the model
    name alone says "AMD EPYC" for CPUs three times apart) can be compared.  About 0.5-0.6 s on
    a current desktop CPU."""
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count() or "?"),
        "cpu": f"{model} (reference loop {reference_loop_seconds():.2f} s)",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_block(begin: str, end: str, block: str) -> None:
    """Puts `block` (which starts with `begin` and ends with `end`) into docs/BENCHMARKS.md in
    place of the previous one, or at the end; the rest of the file is kept.  The file is read
    right before it is written, since other benchmarks keep their own blocks there."""
    if BENCHMARKS_MD.is_file():
        text = BENCHMARKS_MD.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            BENCHMARKS_MD.write_text(head + block + tail)
            return
        BENCHMARKS_MD.write_text(text.rstrip() + "\n\n" + block + "\n")
        return
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(
        "# Benchmarks\n\nFigures written by the benchmarks in `tests/bench/`; the block below "
        "is regenerated on every run, text outside it is kept.\n\n" + block + "\n"
    )
