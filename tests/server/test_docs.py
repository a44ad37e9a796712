"""docs/api.md lists every endpoint the server has (regenerate its table when one is added)."""

from __future__ import annotations

from pathlib import Path

from aisha_server.api.routing import endpoint_of
from aisha_server.app import create_app
from aisha_server.config import load_settings
from tests.conftest import TEST_JWT_SECRET


def test_api_doc_lists_every_endpoint(tmp_path: Path) -> None:
    app = create_app(load_settings(data_dir=tmp_path, overrides={"JWT_SECRET": TEST_JWT_SECRET}))
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    missing = []
    for route in app.router.routes():
        endpoint = endpoint_of(route.handler)
        if endpoint is not None and f"| {endpoint.method} | `{endpoint.path}` |" not in doc:
            missing.append(f"{endpoint.method} {endpoint.path}")
    assert missing == [], f"docs/api.md lacks: {missing}"
