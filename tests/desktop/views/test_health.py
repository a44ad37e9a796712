"""The system health view against a real server (SQLite and PostgreSQL): status and
diagnostics shown in words, metrics sampled into the charts, sampling stopped when the view
closes; refusals, an unreachable server and a failing server shown in the view, never raised.
Renders docs/screenshots/health.png."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PySide6.QtWidgets import QApplication

from aisha_desktop.client import ApiClient, MemoryTokenStore, Tokens
from aisha_desktop.views.health import HealthView, parse_sample
from aisha_desktop.views.main_window import MainWindow
from tests.desktop.screenshots import screenshot_dir
from tests.desktop.sync import conftest as sync_fixtures
from tests.desktop.sync.conftest import Live, Team
from tests.desktop.views.conftest import Desk

live = sync_fixtures.live  # the real server behind a proxy, and users of one tenant
team = sync_fixtures.team
SHOTS = screenshot_dir()
Opener = Callable[..., HealthView]


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Run the Qt and asyncio loops until `check()` holds, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        QApplication.processEvents()
        await asyncio.sleep(0.02)


@pytest.fixture
def open_view(qtbot: Any) -> Iterator[Opener]:
    """Opens health views; closed before the server goes (requested after `live`)."""
    opened: list[HealthView] = []

    def opener(api: ApiClient, **options: Any) -> HealthView:
        view = HealthView(api, **{"interval": 0.1, **options})
        qtbot.addWidget(view)
        view.show()  # starts sampling
        opened.append(view)
        return view

    yield opener
    for view in opened:
        view.close()


def value(view: HealthView, key: str) -> str:
    return view.values[key].text()


async def test_status_diagnostics_and_samples(live: Live, team: Team, open_view: Opener) -> None:
    api = await live.api(team.admin)
    view = open_view(api, keep=5)
    assert view.sampling
    await until(lambda: len(view.samples) >= 3, what="three samples")
    await until(lambda: value(view, "db_latency") != "…", what="diagnostics")
    assert value(view, "backend") == "ok"
    assert value(view, "database").startswith("ok (")
    assert value(view, "mode") == "read-write"
    assert value(view, "schema").startswith("up to date")
    assert value(view, "memory").endswith(" MB")
    assert "Python 3." in value(view, "runtime")
    assert not view.error.isVisible()

    xs, ys = view.rate_curve.getData()
    assert len(xs) >= 3 and xs[-1] == 0 and xs[0] < 0  # seconds ago, newest at 0
    assert max(ys) > 0  # the view's own requests at least
    assert len(view.p95_curve.getData()[1]) == len(xs)
    assert all(s.p95_ms >= s.p50_ms > 0 for s in view.samples)
    # only the last `keep` samples stay
    await until(lambda: len(view.samples) == 5 and view.samples[-1].requests_total > 8)
    assert len(view.rate_curve.getData()[0]) == 5
    assert "samples every 0.1 s" in view.sample_label.text()

    view.close()
    assert not view.sampling
    count = view.samples[-1].requests_total
    await asyncio.sleep(0.4)
    assert view.samples[-1].requests_total == count  # no more sampling after closing


async def test_hidden_view_stops_and_resumes_sampling(
    live: Live, team: Team, open_view: Opener
) -> None:
    api = await live.api(team.admin)
    view = open_view(api)
    await until(lambda: len(view.samples) >= 1)
    view.hide()
    assert not view.sampling
    view.show()
    assert view.sampling
    taken = len(view.samples)
    await until(lambda: len(view.samples) > taken, what="sampling again")
    await view.stop()
    assert not view.sampling


async def test_an_employee_is_refused_metrics_and_sees_why(
    live: Live, team: Team, open_view: Opener
) -> None:
    api = await live.api(team.employee)
    view = open_view(api)
    await until(lambda: "Metrics:" in view.error.text(), what="the refusal shown")
    await until(lambda: "Diagnostics:" in view.error.text(), what="the refusal shown")
    assert view.error.isVisible() and "administrators" in view.error.text()
    assert value(view, "backend") == "ok"  # status is public
    assert view.samples == type(view.samples)() and view.sampling  # goes on trying
    assert view.rate_curve.getData()[0] is None


async def test_an_unreachable_server_is_shown_and_sampling_recovers(
    live: Live, team: Team, open_view: Opener
) -> None:
    api = await live.api(team.admin)
    view = open_view(api)
    await until(lambda: len(view.samples) >= 2)
    await live.proxy.cut()
    await until(lambda: "Cannot reach the server" in view.error.text(), what="offline shown")
    assert view.sampling  # nothing raised: the task goes on
    assert not await view.refresh()
    assert value(view, "backend") == "unreachable"
    taken = len(view.samples)
    await live.proxy.restore()
    await until(lambda: len(view.samples) > taken, what="samples again")
    assert await view.refresh()
    await until(lambda: not view.error.isVisible(), what="the error cleared")
    assert value(view, "backend") == "ok"


@pytest.fixture
async def failing_server() -> AsyncIterator[str]:
    """A server answering every API call with a 500 in the API's envelope, or garbage for
    the metrics of /broken."""

    async def fail(request: web.Request) -> web.Response:
        if request.path.startswith("/broken"):
            return web.json_response({"status": "success", "data": {"requests": "lots"}})
        body = {"status": "error", "message": "database is on fire", "request_id": "r-42"}
        return web.json_response(body, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fail)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_failing_server_is_shown(failing_server: str, open_view: Opener) -> None:
    signed_in = MemoryTokenStore(Tokens("access", "refresh"))
    api = ApiClient(failing_server, timeout=5, token_store=signed_in)
    try:
        view = open_view(api)
        await until(lambda: "Metrics:" in view.error.text(), what="the failure shown")
        await until(lambda: "Diagnostics:" in view.error.text(), what="the failure shown")
        text = view.error.text()
        assert "The server failed: database is on fire" in text and "r-42" in text
        assert value(view, "backend") == "unreachable" and view.samples == type(view.samples)()
        await view.stop()
    finally:
        await api.aclose()

    broken = ApiClient(failing_server + "/broken", timeout=5, token_store=signed_in)
    try:
        view = open_view(broken)
        await until(lambda: "Metrics:" in view.error.text(), what="garbled metrics shown")
        assert "no request counts" in view.error.text()
        await view.stop()
    finally:
        await broken.aclose()


def test_parse_sample_rates_from_totals_and_refuses_garbage() -> None:
    minute = {"requests_per_second": 2.5, "p50_ms": 3.0, "p95_ms": 9.0, "error_rate": 0.25}
    data = {"requests": {"total": 100, "errors_total": 4, "last_minute": minute}}
    first = parse_sample(data, 10.0, None)
    assert first.requests_per_second == 2.5  # no previous sample: the server's average
    assert (first.p50_ms, first.p95_ms, first.error_rate) == (3.0, 9.0, 0.25)
    later = parse_sample({"requests": {**data["requests"], "total": 130}}, 12.0, first)
    assert later.requests_per_second == 15.0  # 30 requests in 2 s
    restarted = parse_sample({"requests": {"total": 5}}, 13.0, later)  # the server restarted
    assert restarted.requests_per_second == 0.0 and restarted.p50_ms == 0.0
    for garbage in (None, [], {"requests": 3}, "ok"):
        with pytest.raises(ValueError):
            parse_sample(garbage, 1.0, None)


async def test_render_health(live: Live, team: Team, open_view: Opener) -> None:
    api = await live.api(team.admin)
    other = await live.api(team.admin2, direct=True)
    view = open_view(api, interval=0.15)
    view.resize(1100, 760)
    for round_ in range(12):  # some traffic (and a few errors) to chart
        for _ in range(3 + round_ % 5):
            await other.request("GET", "/api/contacts")
        if round_ % 4 == 0:
            await asyncio.gather(other.request("GET", "/api/nope"), return_exceptions=True)
        await until(lambda r=round_: len(view.samples) > r, what="a sample")  # type: ignore[misc]
    await until(lambda: value(view, "db_latency") != "…")
    await view.stop()
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "health.png"
    assert view.grab().save(str(path))
    assert path.stat().st_size > 20_000


async def test_main_window_opens_health_and_stops_it_on_close(desk: Desk, qtbot: Any) -> None:
    win = MainWindow(desk, search_delay_ms=10)
    qtbot.addWidget(win)
    win.show()
    palette = win.open_palette()
    palette.query.setText("health")
    assert palette.visible_names() == ["System health…"]
    palette.run_current()
    view = win.health_view
    assert view is not None and view.isVisible() and view.sampling
    # the desk's client never signed in (and its server does not answer): shown, not raised
    await until(lambda: "Metrics: Not signed in" in view.error.text(), what="failure shown")
    win.close()
    assert not view.sampling
