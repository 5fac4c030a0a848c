import email
import email.policy
import logging
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import translation

from tests.factories import AgencyFactory, UserFactory
from tests.support.outages import RedisServer, celery_settings, free_port
from tests.support.seeds import SEEDS_DIR, missing_seeds, seeds_required
from tests.support.staff import role
from tests.support.workers import Worker, skip_unless_workers_can_run
from tracker import cache as fail_soft_cache


def pytest_report_header(config):
    if SEEDS_DIR.is_dir():
        return f"seed documents: {SEEDS_DIR}"
    outcome = "fail (TRACKER_REQUIRE_SEEDS=1)" if seeds_required() else "skip"
    return f"seed documents: none at {SEEDS_DIR}; the seeds tests {outcome}"


@pytest.fixture(autouse=True, scope="session")
def static_files_without_collectstatic():
    """Serve static files from the apps' folders unless collectstatic wrote its manifest:
    tests run with DEBUG off, where settings ask for the hashed names collectstatic makes."""
    if (Path(settings.STATIC_ROOT) / "staticfiles.json").is_file():
        yield
        return
    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    with override_settings(
        STORAGES={**settings.STORAGES, "staticfiles": plain},
        WHITENOISE_USE_FINDERS=True,
        WHITENOISE_AUTOREFRESH=True,
    ):
        yield


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache, answering: throttling counts and host slots are
    per test, and a hung-server pause (tracker.cache) ends with the test that caused it."""
    fail_soft_cache._paused_until = 0.0
    cache.clear()


@pytest.fixture(autouse=True)
def site_language():
    """Each test starts in the site's default language: a request in Spanish leaves Spanish
    active on its thread, and texts written then would go into their Spanish columns."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def cached_responses(settings):
    """Every test reads through the response cache, as production does, so a write that fails
    to invalidate it shows up as a stale read."""
    settings.TRACKER_CACHE_RESPONSES = True


@pytest.fixture
def seeds_dir():
    """The shared seed documents' folder (see tests/support/seeds.py)."""
    if not SEEDS_DIR.is_dir():
        missing_seeds(SEEDS_DIR)
    return SEEDS_DIR


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def editor(db):
    """Staff in the Editor group: record status changes and evidence, triage alerts."""
    user = UserFactory(username="editor", is_staff=True)
    user.groups.add(role("Editor"))
    return user


@pytest.fixture
def viewer(db):
    """Staff in the Viewer group: may look but not write."""
    user = UserFactory(username="viewer", is_staff=True)
    user.groups.add(role("Viewer"))
    return user


@pytest.fixture
def uscis(db):
    return AgencyFactory(name="U.S. Citizenship and Immigration Services", acronym="USCIS")


@pytest.fixture
def congress(db):
    return AgencyFactory(name="Congress", acronym="Congress")


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Start real Celery worker processes sharing this test's database: `start_worker(queue=,
    concurrency=, env=)` returns a started tests.support.workers.Worker. They all write to one
    log in `tmp_path` and stop at the end of the test, before its database is emptied."""
    skip_unless_workers_can_run()
    workers = []

    def start(**options):
        worker = Worker(log=tmp_path / "worker.log", **options)
        workers.append(worker)
        return worker.start()

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process for tests about their callers, not about the queue."""
    with celery_settings(task_always_eager=True):
        yield


@pytest.fixture
def allow_local(httpserver, monkeypatch):
    """The local test HTTP server, let through the fetch guard (and nothing else)."""
    monkeypatch.setenv("TRACKER_FETCH_ALLOW", f"127.0.0.1:{httpserver.port}")
    return httpserver


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, to stop and start (see tests/support/outages.py)."""
    import shutil

    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server on the PATH")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Inbox:
    """An aiosmtpd handler keeping each message it accepts, parsed; it refuses recipients
    listed in `refuse` (a 550, as a server does for an unknown mailbox)."""

    def __init__(self):
        self.messages = []
        self.refuse = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address):
        return [message for message in self.messages if message["To"] == address]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on 127.0.0.1 that Django's SMTP backend sends to; yields its Inbox."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield inbox
    finally:
        controller.stop()
