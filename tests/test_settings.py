"""Settings come from the environment; with none set, Tracker is the embedded demo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
    "'name': str(settings.DATABASES['default']['NAME']), "
    "'host': settings.DATABASES['default'].get('HOST', ''), "
    "'eager': settings.CELERY_TASK_ALWAYS_EAGER, 'broker': settings.CELERY_BROKER_URL, "
    "'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS, "
    "'email': settings.EMAIL_BACKEND}))"
)
CONFIG_NAMES = ["DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"]


def read_settings(**env):
    clean = {key: value for key, value in os.environ.items() if key not in CONFIG_NAMES}
    clean.pop("EMAIL_HOST", None)
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        return {"error": result.stderr}
    return json.loads(result.stdout)


def test_with_nothing_set_it_is_the_embedded_demo():
    config = read_settings()
    assert config["engine"] == "django.db.backends.sqlite3"
    assert config["name"].endswith("db.sqlite3")
    assert config["eager"] is True
    assert config["debug"] is True
    assert config["email"].endswith("console.EmailBackend")


def test_database_broker_and_mail_come_from_the_environment():
    config = read_settings(
        DATABASE_URL="postgres://tracker@127.0.0.1:5432/tracker",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="tracker.example.org, www.tracker.example.org",
        EMAIL_HOST="127.0.0.1",
    )
    assert config["engine"] == "django.db.backends.postgresql"
    assert (config["name"], config["host"]) == ("tracker", "127.0.0.1")
    assert config["eager"] is False
    assert config["broker"] == "redis://127.0.0.1:6379/0"
    assert config["debug"] is False
    assert config["hosts"] == ["tracker.example.org", "www.tracker.example.org"]
    assert config["email"].endswith("smtp.EmailBackend")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "false"}, "SECRET_KEY must be set"),
        ({"DEBUG": "maybe"}, "DEBUG must be true or false"),
    ],
)
def test_unsafe_or_unclear_settings_are_refused(env, message):
    assert message in read_settings(**env)["error"]
