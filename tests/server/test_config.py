"""Configuration: the guide's names and defaults, .env files, and one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisha_server.config import CarePolicyMode, ConfigError, LogLevel, load_settings

CLEAN_ENV = [
    "PORT", "DATABASE_URL", "JWT_SECRET", "RATE_LIMIT_WINDOW_MS", "RATE_LIMIT_MAX",
    "AUTH_RATE_LIMIT_MAX", "PRODUCTION_READONLY", "ALLOWED_ORIGINS", "LOG_LEVEL",
    "CARE_ENABLED", "CARE_POLICY_MODE", "AISHA_DATA_DIR", "SMTP_PORT", "USE_SUPABASE_PROD",
]  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_guides(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert s.PORT == 3001
    assert s.RATE_LIMIT_WINDOW_MS == 60000
    assert s.RATE_LIMIT_MAX == 120
    assert s.AUTH_RATE_LIMIT_MAX == 5
    assert s.PRODUCTION_READONLY is False
    assert s.LOG_LEVEL is LogLevel.INFO
    assert s.ENABLE_PERFORMANCE_LOGGING is True
    assert s.CAMPAIGN_WORKER_ENABLED is False and s.CAMPAIGN_WORKER_INTERVAL_MS == 30000
    assert s.CARE_ENABLED is False and s.CARE_POLICY_MODE is CarePolicyMode.STRICT
    assert s.CARE_SENTIMENT_THRESHOLD == 0.5
    assert (s.CARE_LEAD_STAGNANT_DAYS, s.CARE_DEAL_DECAY_DAYS) == (7, 3)
    assert (s.CARE_ACTIVITY_OVERDUE_THRESHOLD, s.CARE_OPPORTUNITY_HOT_DAYS) == (1, 2)
    assert s.CARE_WORKFLOW_WEBHOOK_TIMEOUT_MS == 3000 and s.CARE_WORKFLOW_WEBHOOK_MAX_RETRIES == 2
    assert s.CARE_AUDIT_LOG_RETENTION_DAYS == 90
    assert s.TRANSCRIPT_ANALYSIS_MODEL == "gpt-4o-mini"
    assert s.is_postgres is False
    assert s.sqlite_path == tmp_path / "aisha.db"


def test_environment_beats_dotenv_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / ".env").write_text("RATE_LIMIT_MAX=10\nLOG_LEVEL=debug\nPORT=4001\n")
    (tmp_path / ".env").write_text("RATE_LIMIT_MAX=20\n")
    s = load_settings(data_dir=data)
    assert s.RATE_LIMIT_MAX == 20  # working-directory .env beats the data-dir one
    assert s.LOG_LEVEL is LogLevel.DEBUG
    monkeypatch.setenv("RATE_LIMIT_MAX", "30")
    assert load_settings(data_dir=data).RATE_LIMIT_MAX == 30


def test_comma_separated_origins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALLOWED_ORIGINS", "http://localhost:4000, http://localhost:5173")
    assert load_settings(data_dir=tmp_path).ALLOWED_ORIGINS == [
        "http://localhost:4000",
        "http://localhost:5173",
    ]


def test_guide_database_url_form_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:pass@host:5432/db")
    assert load_settings(data_dir=tmp_path).is_postgres


def test_every_problem_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RATE_LIMIT_MAX", "lots")
    monkeypatch.setenv("PORT", "70000")
    monkeypatch.setenv("CARE_POLICY_MODE", "yolo")
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    monkeypatch.setenv("JWT_SECRET", "hunter2")
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path)
    lines = caught.value.lines
    assert len(lines) == 4
    assert all("\n" not in line for line in lines)
    assert any(line.startswith("RATE_LIMIT_MAX:") and "'lots'" in line for line in lines)
    assert any(line.startswith("PORT:") for line in lines)
    assert any(line.startswith("CARE_POLICY_MODE:") for line in lines)
    assert any(line.startswith("DATABASE_URL:") for line in lines)


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMTP_PORT", "not-a-port")
    monkeypatch.setenv("CARE_WORKFLOW_WEBHOOK_MAX_RETRIES", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path)
    assert any(line.startswith("SMTP_PORT:") for line in caught.value.lines)


def test_supabase_mode_is_refused_with_a_way_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("USE_SUPABASE_PROD", "true")
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path)
    assert "DATABASE_URL" in caught.value.lines[0]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (None, "missing"),
        ("your-secure-random-string-here", "placeholder"),
        ("short-secret", "too short"),
        ("a" * 64, None),
    ],
)
def test_jwt_secret_strength(
    secret: str | None, problem: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if secret is not None:
        monkeypatch.setenv("JWT_SECRET", secret)
    found = load_settings(data_dir=tmp_path).jwt_secret_problem()
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_missing_env_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(data_dir=tmp_path, env_file=tmp_path / "nope.env")


def test_env_example_documents_every_setting_and_is_current() -> None:
    from aisha_server.config import Settings, env_example

    committed = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    assert committed == env_example(), "regenerate: aisha-server config --example > .env.example"
    for name, field in Settings.model_fields.items():
        assert f"{name}=" in committed
        assert field.description and f"# {field.description}" in committed


def test_configuration_reference_is_current() -> None:
    from aisha_server.config import markdown_table

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert doc.endswith(markdown_table()), "regenerate the table: aisha-server config --markdown"
