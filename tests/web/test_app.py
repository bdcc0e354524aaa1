"""Tests of the web app assembly, its settings, error bodies and the serve command."""

from __future__ import annotations

import pytest
import typer
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from opencohort.config import init_home
from opencohort.registry.auth import DEV_SECRET
from opencohort.web import REGISTRY_PREFIX, Settings, create_app
from opencohort.web import cli as web_cli


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(registry_url=f"sqlite:///{tmp_path / 'r.db'}"))
    with TestClient(app) as client:
        yield client


def test_openapi__paths_and_operation_ids(client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/participants", "/participants/{participant_id}", "/summary",
                 "/participants/{participant_id}/consents", "/samples/{sample_id}/genomic-events",
                 "/participants/{participant_id}/withdrawal", "/audit/verify"):  # fmt: skip
        assert REGISTRY_PREFIX + path in paths
    operations = [op for item in paths.values() for op in item.values()]
    assert all(op["operationId"].split("-")[0] in op["tags"] for op in operations)
    assert all("200" in op["responses"] or "201" in op["responses"] for op in operations)
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_errors__unknown_route_and_method_same_shape(client) -> None:
    unknown = client.get("/nowhere")
    assert unknown.status_code == 404
    assert unknown.json() == {"code": "not_found", "message": "Not Found", "loc": None,
                              "detail": None}  # fmt: skip
    wrong = client.delete(REGISTRY_PREFIX + "/summary")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


def test_settings__refuse_default_secret_outside_development(monkeypatch) -> None:
    url = "sqlite://"
    assert Settings(registry_url=url).secret_key.get_secret_value() == DEV_SECRET
    with pytest.raises(ValidationError, match="OPENCOHORT_SECRET_KEY"):
        Settings(registry_url=url, environment="production")
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(registry_url=url, environment="production", secret_key="short")
    monkeypatch.setenv("OPENCOHORT_ENVIRONMENT", "production")
    monkeypatch.setenv("OPENCOHORT_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("OPENCOHORT_REGISTRY_URL", url)
    assert Settings().environment == "production"


def test_serve__runs_uvicorn_on_home_registry(tmp_path, monkeypatch) -> None:
    home = init_home(tmp_path / "home")
    seen = {}

    def fake_run(app, **options) -> None:
        seen.update(options, paths=app.openapi()["paths"])
        app.state.registry.close()

    monkeypatch.setattr(web_cli.uvicorn, "run", fake_run)
    command = typer.Typer()
    command.command()(web_cli.serve)
    done = CliRunner().invoke(command, ["--home", str(home.root), "--port", "8123"])
    assert done.exit_code == 0, done.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert REGISTRY_PREFIX + "/participants" in seen["paths"]
    assert (home.root / "registry.db").exists()
