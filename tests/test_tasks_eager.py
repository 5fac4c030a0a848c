"""The Celery tasks' own rules, run in-process: retries, host limits, the dispatcher."""

import datetime

import pytest
from django.utils import timezone

from tests.support.pages import Site, local_url, page
from tracker import monitoring, tasks
from tracker.models import Source
from tracker.monitoring import MAX_REQUESTS_PER_HOST, check_source

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]


def test_a_check_of_a_deleted_or_paused_source_does_nothing():
    paused = Source.objects.create(url="https://example.org/", is_active=False)
    assert tasks.check_source_task.delay(paused.pk).get() == "gone"
    assert tasks.check_source_task.delay(10**9).get() == "gone"
    paused.refresh_from_db()
    assert paused.last_checked_at is None


def test_attempts_before_the_last_leave_a_network_failure_to_the_retry(allow_local):
    allow_local.expect_request("/flaky").respond_with_data("down", status=503)
    source = Source.objects.create(url=local_url(allow_local, "/flaky"))
    result = check_source(source, final_attempt=False)
    assert result.retryable
    source.refresh_from_db()
    assert (source.consecutive_failures, source.last_error) == (0, "")
    assert check_source(source, final_attempt=True).outcome == "failed"
    source.refresh_from_db()
    assert source.consecutive_failures == 1
    assert "503" in source.last_error
    assert not source.is_broken
    assert source.next_check_at - source.last_checked_at == source.check_interval


def test_a_retry_logs_its_cause(caplog):
    from celery.exceptions import Retry
    from django.db import OperationalError

    from tracker.queueing import retry_later

    tasks.check_source_task.push_request(args=(7,), retries=1)
    try:
        with pytest.raises(Retry):
            retry_later(tasks.check_source_task, OperationalError("server closed the connection"))
    finally:
        tasks.check_source_task.pop_request()
    message = caplog.records[-1].getMessage()
    assert "check_source_task(7,) failed (attempt 2 of 4)" in message
    assert "OperationalError: server closed the connection" in message


def test_an_in_process_check_tries_once_and_records_the_failure(allow_local):
    allow_local.expect_request("/flaky").respond_with_data("down", status=503)
    source = Source.objects.create(url=local_url(allow_local, "/flaky"))
    assert tasks.check_source_task.delay(source.pk).get() == "failed"
    assert len(allow_local.log) == 1
    source.refresh_from_db()
    assert source.consecutive_failures == 1


def test_a_permanent_failure_is_not_retried(allow_local):
    allow_local.expect_request("/gone").respond_with_data("gone", status=410)
    source = Source.objects.create(url=local_url(allow_local, "/gone"))
    assert tasks.check_source_task.apply(args=(source.pk,)).get() == "failed"
    assert len(allow_local.log) == 1


def test_a_busy_host_defers_the_check_instead_of_fetching(allow_local):
    allow_local.expect_request("/p").respond_with_data(page(), content_type="text/html")
    source = Source.objects.create(url=local_url(allow_local, "/p"))
    origin = f"127.0.0.1:{allow_local.port}"
    held = [monitoring.acquire_host_slot(origin) for _ in range(MAX_REQUESTS_PER_HOST)]
    try:
        assert tasks.check_source_task.delay(source.pk).get() == "deferred"
        assert not allow_local.log
        source.refresh_from_db()
        assert source.next_check_at > timezone.now()
    finally:
        for slot in held:
            monitoring.release_host_slot(slot)
    assert tasks.check_source_task.delay(source.pk).get() == "first_version"


def test_host_slots_are_limited_and_given_back():
    origin = "slots.example.org:443"
    held = [monitoring.acquire_host_slot(origin) for _ in range(MAX_REQUESTS_PER_HOST)]
    assert len(set(held)) == MAX_REQUESTS_PER_HOST
    with pytest.raises(monitoring.HostBusy):
        monitoring.acquire_host_slot(origin)
    monitoring.release_host_slot(held.pop())
    held.append(monitoring.acquire_host_slot(origin))  # the freed slot is taken again
    with pytest.raises(monitoring.HostBusy):
        monitoring.acquire_host_slot(origin)
    for slot in held:
        monitoring.release_host_slot(slot)


def test_the_dispatcher_checks_due_sources(allow_local):
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
