"""Production readiness: deploy checks, static files, /healthz and logs."""

import io
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url
import httpx
import pytest
import yaml
from django.core.management import CommandError, call_command
from django.db.utils import ConnectionHandler
from django.urls import reverse

from tracker import health
from tracker.health import OutageLog, check_broker, check_database, check_health

ROOT = Path(__file__).resolve().parents[1]
# Settings a test's own environment may hold, left out so each run says exactly what it sets.
CONFIG_NAMES = {
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "TRACKER_HTTPS",
    "TRACKER_LOG_FORMAT",
    "LOG_LEVEL",
    "STATIC_ROOT",
    "EMAIL_HOST",
}


def production_env(**overrides):
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "tracker.example.org",
        "CSRF_TRUSTED_ORIGINS": "https://tracker.example.org",
        "TRACKER_HTTPS": "1",
        **overrides,
    }


def run(args, **env):
    clean = {key: value for key, value in os.environ.items() if key not in CONFIG_NAMES}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def closed_port():
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- check --deploy -------------------------------------------------------------------------


def test_production_settings_pass_the_deploy_check_without_warnings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_fails_without_https_settings():
    env = production_env()
    del env["TRACKER_HTTPS"]
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)
    assert result.returncode != 0
    for check in ["security.W004", "security.W008", "security.W012", "security.W016"]:
        assert check in result.stderr


# --- static files ---------------------------------------------------------------------------

STORAGE_PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "from django.templatetags.static import static; "
    "print(json.dumps({'backend': settings.STORAGES['staticfiles']['BACKEND'], "
    "'url': static('admin/css/base.css')}))"
)


def test_collected_static_files_are_served_with_hashed_compressed_names(tmp_path):
    collected = run(
        ["manage.py", "collectstatic", "--no-input", "-v0"],
        **production_env(STATIC_ROOT=str(tmp_path)),
    )
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "staticfiles.json").is_file()
    probe = run(["-c", STORAGE_PROBE], **production_env(STATIC_ROOT=str(tmp_path)))
    config = json.loads(probe.stdout)
    assert config["backend"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    hashed = config["url"].removeprefix("/static/")
    assert hashed != "admin/css/base.css" and hashed.startswith("admin/css/base.")
    assert (tmp_path / hashed).is_file()
    assert (tmp_path / f"{hashed}.gz").is_file()


def test_static_files_are_served_without_collectstatic_in_tests(client):
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)


# --- /healthz -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_answers_200_with_the_real_database_and_broker(client, settings):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok" if settings.CELERY_BROKER_URL else "not configured",
    }
    assert "no-store" in response["Cache-Control"]
    assert not response.has_header("ETag")


@pytest.mark.django_db
def test_healthz_answers_503_when_the_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "ok", "broker": "error"}


@pytest.mark.django_db
def test_an_outage_logs_one_line_a_minute_not_a_traceback_per_probe(
    client, settings, caplog, monkeypatch
):
    clock = [1000.0]
    monkeypatch.setattr(health, "broker_outages", OutageLog("broker", clock=lambda: clock[0]))
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    caplog.set_level(logging.WARNING, logger="tracker.health")
    for _ in range(5):  # a load balancer probing every few seconds
        assert client.get(reverse("healthz")).status_code == 503
        clock[0] += 5
    assert [record.name for record in caplog.records] == ["tracker.health"]
    warnings = caplog.records
    assert "the broker did not answer" in warnings[0].getMessage()
    assert "Error" in warnings[0].getMessage()  # the cause, in one line
    assert warnings[0].exc_info is None

    clock[0] += 60
    client.get(reverse("healthz"))
    assert "4 more failed checks" in caplog.records[-1].getMessage()

    settings.CELERY_BROKER_URL = ""  # tasks in-process: nothing to reach
    monkeypatch.setattr(health, "check_broker", lambda: "ok")
    health.broker_outages.answered()
    health.broker_outages.answered()  # said once, not on every probe after
    returns = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(returns) == 1


def test_the_broker_check_gives_up_on_a_broker_that_never_answers():
    # A socket that accepts connections (the kernel's backlog) and never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        started = time.monotonic()
        assert check_broker(f"redis://127.0.0.1:{silent.getsockname()[1]}/0") == "error"
    # A bound on the check's own timeout (1.5 s), not a speed measurement: it must not hang.
    assert time.monotonic() - started < 10


@pytest.mark.django_db
def test_the_database_check_reports_an_unreachable_database():
    url = f"postgres://postgres@127.0.0.1:{closed_port()}/tracker"
    unreachable = ConnectionHandler({"default": dj_database_url.parse(url)})["default"]
    try:
        assert check_database(unreachable) == "error"
    finally:
        unreachable.close()


HEALTHZ_PROBE = (
    "import json, django; django.setup(); "
    "from django.test import Client; from django.test.utils import setup_test_environment; "
    "setup_test_environment(); response = Client().get('/healthz'); "
    "print(json.dumps({'status': response.status_code, 'body': response.json()}))"
)


def test_healthz_answers_503_when_the_database_is_unreachable():
    result = run(
        ["-c", HEALTHZ_PROBE],
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/tracker",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "status": 503,
        "body": {"status": "error", "database": "error", "broker": "not configured"},
    }


# --- logs -----------------------------------------------------------------------------------


def test_json_logs_are_one_object_a_line_with_the_request_fields():
    result = run(
        ["-c", HEALTHZ_PROBE],
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/tracker",
        TRACKER_LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses
    request = next(r for r in records if r["logger"] == "tracker.requests")
    assert (request["method"], request["path"], request["status"]) == ("GET", "/healthz", 503)
    assert isinstance(request["duration_ms"], float)
    assert request["level"] == "DEBUG" and request["time"]
    problem = next(r for r in records if r["logger"] == "tracker.health")
    assert problem["level"] == "WARNING" and "OperationalError" in problem["message"]
    assert problem["request_id"] == request["request_id"]


def test_an_unknown_log_format_is_refused():
    result = run(["-c", "import django; django.setup()"], TRACKER_LOG_FORMAT="yaml")
    assert "TRACKER_LOG_FORMAT must be text or json" in result.stderr


def test_each_request_is_logged_readably_with_its_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="tracker.requests"):
        response = client.get(reverse("api:api-root"))
    (record,) = [r for r in caplog.records if r.name == "tracker.requests"]
    assert record.getMessage().startswith("GET /api/v1/ 200 ")
    assert record.getMessage().endswith("ms")
    assert (record.method, record.path, record.status) == ("GET", "/api/v1/", 200)
    assert response["X-Request-ID"] == record.request_id


def test_a_request_id_from_the_proxy_is_kept_and_a_strange_one_replaced(client):
    kept = client.get(reverse("api:api-root"), headers={"X-Request-ID": "lb-1234.abc"})
    assert kept["X-Request-ID"] == "lb-1234.abc"
    replaced = client.get(reverse("api:api-root"), headers={"X-Request-ID": "<script>"})
    assert replaced["X-Request-ID"] != "<script>" and len(replaced["X-Request-ID"]) == 32


# --- gunicorn -------------------------------------------------------------------------------


GUNICORN = Path(sys.executable).with_name("gunicorn")


def test_gunicorn_serves_healthz_with_its_config_file_and_logs_json(tmp_path):
    port = closed_port()
    clean = {key: value for key, value in os.environ.items() if key not in CONFIG_NAMES}
    server = subprocess.Popen(
        [GUNICORN, "-c", "config/gunicorn.conf.py", "config.wsgi"],
        env={
            **clean,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "TRACKER_LOG_FORMAT": "json",
        },
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json()["database"] == "ok"
        assert response.headers["Server"] == "gunicorn"
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    lines = [json.loads(line) for line in errors.splitlines() if line.strip()]
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    assert not any(line["logger"] == "gunicorn.access" for line in lines)


@pytest.mark.django_db
def test_the_health_command_checks_for_containers_without_http(settings):
    out = io.StringIO()
    call_command("check_health", stdout=out)
    assert json.loads(out.getvalue()) == check_health()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with pytest.raises(CommandError, match="Unhealthy"):
        call_command("check_health", stdout=io.StringIO())


# --- docker (no engine here: the files are checked, not built) -----------------------------


def test_the_compose_file_starts_each_service_once_its_dependencies_are_healthy():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    for name in ["postgres", "redis", "worker", "beat"]:
        assert services[name]["healthcheck"]["test"], name
    for name in ["web", "worker", "beat"]:
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["redis"]["condition"] == "service_healthy"
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert "${SECRET_KEY:?" in services[name]["environment"]["SECRET_KEY"]
    assert "--concurrency ${CELERY_WORKER_CONCURRENCY" in services["worker"]["command"]
    # Queued work outlives a Redis restart: an append-only file on a named volume.
    assert "--appendonly yes" in services["redis"]["command"]
    assert services["redis"]["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]


def test_the_image_runs_unprivileged_with_collected_files_and_a_health_check():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert "USER tracker" in final_stage and "collectstatic" in final_stage
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert "/healthz" in final_stage
    assert lines[-1] == 'CMD ["gunicorn", "config.wsgi"]'
