"""Celery end to end: a real worker on the real Redis broker and PostgreSQL database."""

import re

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from tests.support.pages import ConcurrencyProbe, Site, local_url, page
from tests.support.workers import wait_until
from tracker.models import ChangeAlert, Source
from tracker.monitoring import MAX_REQUESTS_PER_HOST, Outcome, check_sources
from tracker.tasks import CHECK_RETRIES, check_source_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def check_worker(start_worker, httpserver):
    """A real worker that checks sources on the local test server."""
    return start_worker(env={"TRACKER_FETCH_ALLOW": f"127.0.0.1:{httpserver.port}"})


def test_a_real_worker_records_a_change_alert_once_even_if_delivered_twice(
    check_worker, httpserver
):
    site = Site(page())
    httpserver.expect_request("/chnv").respond_with_handler(site.handler)
    source = Source.objects.create(url=local_url(httpserver, "/chnv"))

    check_source_task.apply_async((source.pk,), queue=check_worker.queue)
    wait_until(lambda: check_worker.succeeded() == 1, message="the baseline check")
    assert source.versions.count() == 1

    site.body = page("updated to 1 August 2024")
    for _ in range(2):  # the same message delivered twice
        check_source_task.apply_async((source.pk,), queue=check_worker.queue)
    wait_until(lambda: check_worker.succeeded() == 3, message="both deliveries")

    assert source.versions.count() == 2
    alert = ChangeAlert.objects.get()
    assert "updated to 1 August 2024" in alert.diff


def test_a_real_worker_retries_network_failures_and_counts_them_once(check_worker, httpserver):
    httpserver.expect_request("/flaky").respond_with_data("down", status=503)
    source = Source.objects.create(url=local_url(httpserver, "/flaky"))
    check_source_task.apply_async((source.pk,), queue=check_worker.queue)
    wait_until(lambda: check_worker.succeeded() == 1, message="the check and its retries")
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
    busy_site, start_worker, processes
):
    server, probe = busy_site
    by_worker = [Source.objects.create(url=local_url(server, f"/w{n}")) for n in range(16)]
    in_bulk = [Source.objects.create(url=local_url(server, f"/b{n}")) for n in range(12)]
    worker = start_worker(env={"TRACKER_FETCH_ALLOW": f"127.0.0.1:{server.port}"})
    for source in by_worker:
        check_source_task.apply_async((source.pk,), queue=worker.queue)
    wait_until(lambda: probe.current > 0, message="the worker's first fetch")

    outcomes = check_sources(in_bulk, concurrency=8, processes=processes)
    wait_until(lambda: worker.succeeded() == len(by_worker), message="the worker's checks")
    worker.stop()

    assert probe.peak <= MAX_REQUESTS_PER_HOST
    assert outcomes == {Outcome.FIRST_VERSION: len(in_bulk)}  # the bulk check waited its turns
    fetched = Source.objects.filter(pk__in=[s.pk for s in by_worker], versions__isnull=False)
    assert fetched.exists()  # the worker checked while the bulk run did
    deferred = Source.objects.filter(pk__in=[s.pk for s in by_worker], versions__isnull=True)
    assert all(source.next_check_at > timezone.now() for source in deferred)
