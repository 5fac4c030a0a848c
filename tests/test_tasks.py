"""Celery end to end: a real worker on the real Redis broker and PostgreSQL database."""

import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from pytest_httpserver import HTTPServer

from config.celery import app as celery_app
from tests.conftest import local_url
from tests.test_monitoring import ConcurrencyProbe, Site, page
from tracker.models import ChangeAlert, Source
from tracker.monitoring import MAX_REQUESTS_PER_HOST, Outcome, check_sources
from tracker.tasks import CHECK_RETRIES, check_source_task

ROOT = Path(__file__).resolve().parents[1]
BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not BROKER_URL or not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="needs CELERY_BROKER_URL and a PostgreSQL DATABASE_URL (as .ci/run sets)",
    ),
]


def database_url():
    """The URL of the test database this session created, for the worker to share it."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_until(condition, *, timeout=30.0, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def worker(transactional_db, httpserver, tmp_path):
    """A Celery worker process on its own queue, sharing this test's database."""
    with running_worker(tmp_path, allow=f"127.0.0.1:{httpserver.port}") as (queue, log):
        yield queue, log


@contextmanager
def running_worker(tmp_path, *, allow):
    """Run a Celery worker on a queue of its own, fetching only from `allow` (host:port
    pairs); yield the queue's name and the worker's log file."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "TRACKER_FETCH_ALLOW": allow,
        "TRACKER_CHECK_RETRY_SECONDS": "0",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker",
        "--queues", queue, "--pool", "threads", "--concurrency", "2",
        "--without-mingle", "--without-gossip", "--loglevel", "INFO",
        "--hostname", f"{queue}@{os.uname().nodename}",
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    try:
        wait_until(
            lambda: celery_app.control.ping(
                destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5
            ),
            timeout=60,
            message="the worker to answer a ping",
        )
        yield queue, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def succeeded(log):
    return log.read_text().count("succeeded in")


def test_a_real_worker_records_a_change_alert_once_even_if_delivered_twice(worker, httpserver):
    queue, log = worker
    site = Site(page())
    httpserver.expect_request("/chnv").respond_with_handler(site.handler)
    source = Source.objects.create(url=local_url(httpserver, "/chnv"))

    check_source_task.apply_async((source.pk,), queue=queue)
    wait_until(lambda: succeeded(log) == 1, message="the baseline check")
    assert source.versions.count() == 1

    site.body = page("updated to 1 August 2024")
    for _ in range(2):  # the same message delivered twice
        check_source_task.apply_async((source.pk,), queue=queue)
    wait_until(lambda: succeeded(log) == 3, message="both deliveries")

    assert source.versions.count() == 2
    alert = ChangeAlert.objects.get()
    assert "updated to 1 August 2024" in alert.diff


def test_a_real_worker_retries_network_failures_and_counts_them_once(worker, httpserver):
    queue, log = worker
    httpserver.expect_request("/flaky").respond_with_data("down", status=503)
    source = Source.objects.create(url=local_url(httpserver, "/flaky"))
    check_source_task.apply_async((source.pk,), queue=queue)
    wait_until(lambda: succeeded(log) == 1, message="the check and its retries")
    assert len(httpserver.log) == 1 + CHECK_RETRIES
    source.refresh_from_db()
    assert source.consecutive_failures == 1
    assert "503" in source.last_error


@pytest.fixture
def busy_site(monkeypatch):
    """A local site that answers in parallel, holding each request a while and counting how
    many it serves at once; let through the fetch guard."""
    probe = ConcurrencyProbe()
    probe.delay = 0.3
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(re.compile("^/")).respond_with_handler(probe.handler)
    server.start()
    monkeypatch.setenv("TRACKER_FETCH_ALLOW", f"127.0.0.1:{server.port}")
    yield server, probe
    server.stop()


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_workers_and_a_bulk_check_together_stay_within_the_host_limit(
    busy_site, tmp_path, processes
):
    server, probe = busy_site
    by_worker = [Source.objects.create(url=local_url(server, f"/w{n}")) for n in range(16)]
    in_bulk = [Source.objects.create(url=local_url(server, f"/b{n}")) for n in range(12)]
    with running_worker(tmp_path, allow=f"127.0.0.1:{server.port}") as (queue, log):
        for source in by_worker:
            check_source_task.apply_async((source.pk,), queue=queue)
        wait_until(lambda: probe.current > 0, message="the worker's first fetch")

        outcomes = check_sources(in_bulk, concurrency=8, processes=processes)
        wait_until(lambda: succeeded(log) == len(by_worker), message="the worker's checks")

    assert probe.peak <= MAX_REQUESTS_PER_HOST
    assert outcomes == {Outcome.FIRST_VERSION: len(in_bulk)}  # the bulk check waited its turns
    fetched = Source.objects.filter(pk__in=[s.pk for s in by_worker], versions__isnull=False)
    assert fetched.exists()  # the worker checked while the bulk run did
    deferred = Source.objects.filter(pk__in=[s.pk for s in by_worker], versions__isnull=True)
    assert all(source.next_check_at > timezone.now() for source in deferred)
