from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache

from config.celery import app as celery_app
from tests.factories import AgencyFactory, UserFactory

# The shared seed documents sit beside the repository on developer machines and in CI.
SEEDS_DIR = Path(__file__).resolve().parents[2] / "shared" / "seeds"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache: throttling counts and host slots are per test."""
    cache.clear()


@pytest.fixture
def seeds_dir():
    if not SEEDS_DIR.is_dir():
        pytest.skip(f"seed documents not found at {SEEDS_DIR}")
    return SEEDS_DIR


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def editor(db):
    """Staff who record status changes and evidence."""
    user = UserFactory(username="editor", is_staff=True)
    codenames = [
        "view_recommendation",
        "change_recommendation",
        "view_statuschange",
        "add_statuschange",
        "view_evidence",
        "add_evidence",
        "change_evidence",
        "view_source",
        "view_changealert",
        "change_changealert",
        "view_feedentry",
        "change_feedentry",
    ]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def viewer(db):
    """Staff who may look but not write."""
    user = UserFactory(username="viewer", is_staff=True)
    codenames = [
        "view_recommendation",
        "view_statuschange",
        "view_evidence",
        "view_changealert",
        "view_feedentry",
        "view_source",
    ]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def uscis(db):
    return AgencyFactory(name="U.S. Citizenship and Immigration Services", acronym="USCIS")


@pytest.fixture
def congress(db):
    return AgencyFactory(name="Congress", acronym="Congress")


@contextmanager
def celery_settings(**values):
    """Set Celery configuration values for the duration of a block."""
    previous = {name: getattr(celery_app.conf, name) for name in values}
    celery_app.conf.update(values)
    try:
        yield
    finally:
        celery_app.conf.update(previous)


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process for tests about their callers, not about the queue."""
    with celery_settings(task_always_eager=True):
        yield


def local_url(server, path):
    """The server's URL by address: the fetch guard allows exact 127.0.0.1:port pairs."""
    return f"http://127.0.0.1:{server.port}{path}"


@pytest.fixture
def allow_local(httpserver, monkeypatch):
    """The local test HTTP server, let through the fetch guard (and nothing else)."""
    monkeypatch.setenv("TRACKER_FETCH_ALLOW", f"127.0.0.1:{httpserver.port}")
    return httpserver


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, to stop and start (see tests/outages.py)."""
    import shutil

    from tests.outages import RedisServer

    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server on the PATH")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
