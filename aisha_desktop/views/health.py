"""`HealthView`: the server's status and diagnostics in words, and pyqtgraph charts of
request rate, latency (p50/p95) and error rate sampled from `/api/system/metrics`.

Sampling is one asyncio task owned by the view: started when the view is shown, cancelled
when it is hidden or closed; it keeps the last `keep` samples.  Failures (unreachable server,
refusals, 5xx) are shown in the view and sampling goes on - nothing is raised at the user.
The charts' items are created once and updated with `setData`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aisha_desktop.client import ApiClient
from aisha_desktop.dialogs.common import BANNER_ERROR, banner, describe, show_banner
from aisha_desktop.models.wording import counted

OK_STYLE = "color: #2e7d32; font-weight: 600;"
BAD_STYLE = "color: #b3261e; font-weight: 600;"


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # monotonic seconds
    requests_total: int
    errors_total: int
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    error_rate: float  # 0..1, over the last minute


def parse_sample(data: Any, at: float, previous: Sample | None) -> Sample:
    """One point of the charts from a metrics answer; the request rate is the change of the
    total since the previous sample (the server's one-minute average before there is one)."""
    if not isinstance(data, Mapping):
        raise ValueError("the metrics answer holds no object")
    requests = data.get("requests")
    if not isinstance(requests, Mapping):
        raise ValueError("the metrics answer holds no request counts")
    minute = requests.get("last_minute")
    minute = minute if isinstance(minute, Mapping) else {}
    total = int(requests.get("total") or 0)
    errors = int(requests.get("errors_total") or 0)
    rate = float(minute.get("requests_per_second") or 0.0)
    if previous is not None and at > previous.at and total >= previous.requests_total:
        rate = (total - previous.requests_total) / (at - previous.at)
    return Sample(
        at=at,
        requests_total=total,
        errors_total=errors,
        requests_per_second=rate,
        p50_ms=float(minute.get("p50_ms") or 0.0),
        p95_ms=float(minute.get("p95_ms") or 0.0),
        error_rate=float(minute.get("error_rate") or 0.0),
    )


def _megabytes(value: Any) -> str:
    return f"{value / 1_048_576:.0f} MB" if isinstance(value, int | float) else "—"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


class HealthView(QDialog):
    def __init__(
        self,
        api: ApiClient,
        parent: QWidget | None = None,
        *,
        interval: float = 3.0,
        keep: int = 120,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("System health")
        self.resize(980, 720)
        self.api = api
        self.interval = interval
        self.samples: deque[Sample] = deque(maxlen=keep)
        self._started = time.monotonic()
        self._sampler: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[bool] | None = None
        self._problems: dict[str, list[str]] = {}  # by source: "refresh", "metrics"

        self.error = banner()
        self.values: dict[str, QLabel] = {}
        status_box = self._form(
            "Status",
            [
                ("backend", "Server"),
                ("database", "Database"),
                ("version", "Version"),
                ("uptime", "Up for"),
                ("mode", "Mode"),
            ],
        )
        diagnostics_box = self._form(
            "Diagnostics",
            [
                ("db_latency", "Database latency"),
                ("schema", "Schema"),
                ("pool", "Connection pool"),
                ("memory", "Memory (RSS)"),
                ("runtime", "Runtime"),
                ("rate_limit", "Rate limit"),
            ],
        )
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.start_refresh)
        top = QHBoxLayout()
        top.addWidget(status_box, 1)
        top.addWidget(diagnostics_box, 2)

        pg.setConfigOptions(antialias=True, background="w", foreground="#333333")
        self.rate_plot = self._plot("Requests per second", "req/s")
        self.latency_plot = self._plot("Latency (last minute)", "ms")
        self.latency_plot.addLegend(offset=(-10, 10))
        self.error_plot = self._plot("Error rate (last minute)", "%")
        self.rate_curve = self.rate_plot.plot(pen=pg.mkPen("#1a5fb4", width=2), name="req/s")
        self.p50_curve = self.latency_plot.plot(pen=pg.mkPen("#2e7d32", width=2), name="p50")
        self.p95_curve = self.latency_plot.plot(pen=pg.mkPen("#b26a00", width=2), name="p95")
        self.error_curve = self.error_plot.plot(pen=pg.mkPen("#b3261e", width=2), name="errors")
        self.sample_label = QLabel("No samples yet")
        self.sample_label.setStyleSheet("color: #5f6b7a;")
        charts = QHBoxLayout()
        for plot in (self.rate_plot, self.latency_plot, self.error_plot):
            charts.addWidget(plot)

        footer = QHBoxLayout()
        footer.addWidget(self.sample_label, 1)
        footer.addWidget(self.refresh_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.error)
        layout.addLayout(top)
        layout.addLayout(charts, 1)
        layout.addLayout(footer)

    # -- building ------------------------------------------------------------------------
    def _form(self, title: str, rows: list[tuple[str, str]]) -> QGroupBox:
        box = QGroupBox(title)
        form = QFormLayout(box)
        for key, caption in rows:
            label = QLabel("…")
            label.setObjectName(key)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.values[key] = label
            form.addRow(caption, label)
        return box

    def _plot(self, title: str, unit: str) -> Any:
        plot = pg.PlotWidget(title=title)
        plot.setLabel("left", unit)
        plot.setLabel("bottom", "seconds ago")
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMinimumHeight(220)
        plot.setMouseEnabled(x=False, y=False)
        plot.setLimits(yMin=0)
        plot.getAxis("left").enableAutoSIPrefix(False)
        return plot

    def _set(self, key: str, text: str, ok: bool | None = None) -> None:
        label = self.values[key]
        label.setText(text)
        label.setStyleSheet("" if ok is None else OK_STYLE if ok else BAD_STYLE)

    # -- status and diagnostics ------------------------------------------------------------
    def start_refresh(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self.refresh())

    async def refresh(self) -> bool:
        """Fetch status and diagnostics and show them; False (and the reason shown) when
        either failed."""
        problems: list[str] = []
        self.refresh_button.setEnabled(False)
        try:
            try:
                self.show_status(await self.api.request("GET", "/api/status"))
            except Exception as exc:
                problems.append(f"Status: {describe(exc)}")
                self._set("backend", "unreachable", ok=False)
            try:
                self.show_diagnostics(await self.api.request("POST", "/api/system/diagnostics"))
            except Exception as exc:
                problems.append(f"Diagnostics: {describe(exc)}")
        finally:
            self.refresh_button.setEnabled(True)
        self._problems["refresh"] = problems
        self._show_problems()
        return not problems

    def _show_problems(self) -> None:
        lines = [line for group in self._problems.values() for line in group]
        show_banner(self.error, "\n".join(lines), BANNER_ERROR)

    def show_status(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ValueError("the status answer holds no object")
        backend = data.get("backend")
        self._set("backend", str(backend or "unknown"), ok=backend == "ok")
        database = data.get("database")
        db_name = data.get("database_backend") or ""
        self._set("database", f"{database} ({db_name})" if db_name else str(database),
                  ok=database == "ok")  # fmt: skip
        self._set("version", str(data.get("version") or "—"))
        self._set("uptime", _duration(data.get("uptime_seconds")))
        readonly = bool(data.get("readonly"))
        self._set("mode", "read-only" if readonly else "read-write", ok=not readonly)

    def show_diagnostics(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ValueError("the diagnostics answer holds no object")
        db = data.get("database") if isinstance(data.get("database"), Mapping) else {}
        assert isinstance(db, Mapping)
        if db.get("ok"):
            self._set("db_latency", f"{float(db.get('latency_ms') or 0):.1f} ms", ok=True)
        else:
            self._set("db_latency", f"failing: {db.get('error') or 'unknown error'}", ok=False)
        revision = db.get("schema_revision") or "none"
        if db.get("schema_up_to_date"):
            self._set("schema", f"up to date ({revision})", ok=True)
        else:
            self._set("schema", f"{revision}, expected {db.get('schema_head')}", ok=False)
        pool = db.get("pool")
        numbers = pool.items() if isinstance(pool, Mapping) else ()
        shown = [f"{k.replace('_', ' ')} {v}" for k, v in numbers if isinstance(v, int | float)]
        self._set("pool", ", ".join(shown) or "— (no pool)")
        memory = data.get("memory")
        self._set(
            "memory", _megabytes(memory.get("rss_bytes") if isinstance(memory, Mapping) else None)
        )
        runtime = data.get("runtime")
        if isinstance(runtime, Mapping):
            self._set("runtime", f"Python {runtime.get('python')}, pid {runtime.get('pid')}, "
                                 f"{runtime.get('platform')}")  # fmt: skip
        config = data.get("config")
        limit = config.get("rate_limit") if isinstance(config, Mapping) else None
        if isinstance(limit, Mapping):
            window = float(limit.get("window_ms") or 0) / 1000
            shared = "shared" if limit.get("shared") else "per process"
            self._set("rate_limit", f"{limit.get('max')} per {window:g} s "
                                    f"(sign-in {limit.get('auth_max')}), {shared}")  # fmt: skip

    # -- sampling --------------------------------------------------------------------------
    @property
    def sampling(self) -> bool:
        return self._sampler is not None and not self._sampler.done()

    def start(self) -> None:
        """Start sampling (and fetch status and diagnostics) unless it runs already."""
        if not self.sampling:
            self._sampler = asyncio.ensure_future(self._sample_forever())
        self.start_refresh()

    async def stop(self) -> None:
        """Stop sampling and wait until it stopped."""
        tasks = [t for t in (self._sampler, self._refresher) if t is not None]
        self._sampler = self._refresher = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _cancel(self) -> None:
        for task in (self._sampler, self._refresher):
            if task is not None:
                task.cancel()
        self._sampler = self._refresher = None

    async def _sample_forever(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval)

    async def sample(self) -> bool:
        """Take one sample and redraw; a failure is shown and leaves the charts as they are."""
        try:
            data = await self.api.request("GET", "/api/system/metrics")
            previous = self.samples[-1] if self.samples else None
            sample = parse_sample(data, time.monotonic(), previous)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._problems["metrics"] = [f"Metrics: {describe(exc)}"]
            self._show_problems()
            return False
        self._problems["metrics"] = []
        self._show_problems()
        self.samples.append(sample)
        self.redraw()
        return True

    def redraw(self) -> None:
        if not self.samples:
            return
        now = self.samples[-1].at
        xs = [s.at - now for s in self.samples]
        self.rate_curve.setData(xs, [s.requests_per_second for s in self.samples])
        self.p50_curve.setData(xs, [s.p50_ms for s in self.samples])
        self.p95_curve.setData(xs, [s.p95_ms for s in self.samples])
        errors = [s.error_rate * 100 for s in self.samples]
        self.error_curve.setData(xs, errors)
        # a flat 0 % line sits at the bottom of a 0-5 % scale, not in the middle of nothing
        self.error_plot.setYRange(0, max(5.0, max(errors) * 1.2), padding=0)
        last = self.samples[-1]
        self.sample_label.setText(
            f"{counted(len(self.samples), 'sample')} every {self.interval:g} s · now "
            f"{last.requests_per_second:.1f} req/s, p50 {last.p50_ms:.1f} ms, "
            f"p95 {last.p95_ms:.1f} ms, errors {last.error_rate * 100:.1f} % "
            f"({last.errors_total} of {last.requests_total} requests since start)"
        )

    # -- lifetime --------------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        self.start()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802
        self._cancel()
        super().hideEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._cancel()
        super().closeEvent(event)


__all__ = ["HealthView", "Sample", "parse_sample"]
