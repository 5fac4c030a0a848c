"""The Celery tasks' own rules, run in-process: retries, host limits, the dispatcher."""

import datetime

import pytest
from django.utils import timezone

from tests.conftest import celery_settings
from tests.test_monitoring import Site, local_url, page
from tracker import tasks
from tracker.models import Source

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]


@pytest.fixture
def allow_local(httpserver, monkeypatch):
    monkeypatch.setenv("TRACKER_FETCH_ALLOW", f"127.0.0.1:{httpserver.port}")
    return httpserver


def test_a_check_of_a_deleted_or_paused_source_does_nothing():
    paused = Source.objects.create(url="https://example.org/", is_active=False)
    assert tasks.check_source_task.delay(paused.pk).get() == "gone"
    assert tasks.check_source_task.delay(10**9).get() == "gone"
    paused.refresh_from_db()
    assert paused.last_checked_at is None


@pytest.fixture
def eager_retries():
    """In-process retries run one after another only when errors do not propagate."""
    with celery_settings(task_eager_propagates=False):
        yield


def test_network_failures_are_retried_then_recorded(allow_local, eager_retries):
    allow_local.expect_request("/flaky").respond_with_data("down", status=503)
    source = Source.objects.create(url=local_url(allow_local, "/flaky"))
    tasks.check_source_task.apply(args=(source.pk,))
    assert len(allow_local.log) == 1 + tasks.CHECK_RETRIES
    source.refresh_from_db()
    assert source.consecutive_failures == 1 + tasks.CHECK_RETRIES
    assert "503" in source.last_error


def test_a_permanent_failure_is_not_retried(allow_local):
    allow_local.expect_request("/gone").respond_with_data("gone", status=410)
    source = Source.objects.create(url=local_url(allow_local, "/gone"))
    assert tasks.check_source_task.apply(args=(source.pk,)).get() == "failed"
    assert len(allow_local.log) == 1


def test_a_busy_host_defers_the_check_instead_of_fetching(allow_local):
    allow_local.expect_request("/p").respond_with_data(page(), content_type="text/html")
    source = Source.objects.create(url=local_url(allow_local, "/p"))
    origin = f"127.0.0.1:{allow_local.port}"
    for _ in range(tasks.monitoring.MAX_REQUESTS_PER_HOST):
        tasks.acquire_host_slot(origin)
    try:
        assert tasks.check_source_task.delay(source.pk).get() == "deferred"
        assert not allow_local.log
        source.refresh_from_db()
        assert source.next_check_at > timezone.now()
    finally:
        for _ in range(tasks.monitoring.MAX_REQUESTS_PER_HOST):
            tasks.release_host_slot(origin)
    assert tasks.check_source_task.delay(source.pk).get() == "first_version"


def test_host_slots_are_limited_and_given_back():
    origin = "slots.example.org:443"
    for _ in range(tasks.monitoring.MAX_REQUESTS_PER_HOST):
        tasks.acquire_host_slot(origin)
    with pytest.raises(tasks.HostBusy):
        tasks.acquire_host_slot(origin)
    tasks.release_host_slot(origin)
    tasks.acquire_host_slot(origin)  # one came free
    for _ in range(tasks.monitoring.MAX_REQUESTS_PER_HOST):
        tasks.release_host_slot(origin)


def test_the_dispatcher_checks_due_sources(allow_local, django_capture_on_commit_callbacks):
    site = Site(page())
    allow_local.expect_request("/due").respond_with_handler(site.handler)
    due = Source.objects.create(url=local_url(allow_local, "/due"))
    later = Source.objects.create(
        url=local_url(allow_local, "/later"),
        next_check_at=timezone.now() + datetime.timedelta(hours=1),
    )
    assert tasks.dispatch_due_sources.delay().get() == 1
    assert due.versions.count() == 1
    assert not later.versions.exists()
