"""Faults during a check, for real: the database connection killed mid-check, and a worker
killed mid-check. PostgreSQL only (pg_terminate_backend); the worker tests need Redis too."""

import os
import signal
import threading
import time

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection

from tests.support.pages import Site, local_url, page
from tests.support.workers import wait_until
from tracker.models import ChangeAlert, Source, SourceVersion
from tracker.monitoring import check_source
from tracker.tasks import check_source_task

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="kills PostgreSQL backends: needs a PostgreSQL DATABASE_URL",
    ),
]
# Seconds before the broker hands a dead worker's unacknowledged task to another worker.
VISIBILITY_TIMEOUT = 2


def admin_connection():
    """A second connection to the test database, to kill this test's own sessions from."""
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], password=db["PASSWORD"],
        dbname=db["NAME"], autocommit=True,
    )  # fmt: skip


def terminate_backend(pid):
    with admin_connection() as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


@pytest.fixture
def changed_source(allow_local):
    """A source checked once (its baseline), whose page has changed since."""
    site = Site(page())
    hooks = []

    def handler(request):
        for hook in hooks:
            hook()
        return site.handler(request)

    allow_local.expect_request("/p").respond_with_handler(handler)
    source = Source.objects.create(url=local_url(allow_local, "/p"))
    assert check_source(source).outcome == "first_version"
    site.body = page("updated to 1 August 2024")
    source.refresh_from_db()
    return source, hooks, site


def state(source):
    source.refresh_from_db()
    return (source.content_hash, source.last_checked_at, source.next_check_at)


def test_losing_the_database_during_the_fetch_writes_nothing(changed_source):
    source, hooks, _ = changed_source
    before = state(source)
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    hooks.append(lambda: terminate_backend(pid))  # while the page is being fetched

    with pytest.raises((OperationalError, InterfaceError)):
        check_source(source)
    connection.close()  # as a worker does after a failed task; the next query reconnects

    assert SourceVersion.objects.filter(source=source).count() == 1
    assert not ChangeAlert.objects.exists()
    assert state(source) == before  # not marked checked: still due when its claim lapses
    hooks.clear()
    assert check_source(source).outcome == "changed"  # the retry records it, once
    assert (SourceVersion.objects.count(), ChangeAlert.objects.count()) == (2, 1)


@pytest.fixture
def kill_on_alert_insert():
    """Make PostgreSQL kill the session that inserts the next change alert (once): the
    connection is lost mid-transaction, after the new version's insert."""
    with admin_connection() as admin:
        admin.execute("CREATE SEQUENCE IF NOT EXISTS test_alert_kills")  # not rolled back
        admin.execute(
            """CREATE OR REPLACE FUNCTION test_kill_inserter() RETURNS trigger AS $$
            BEGIN
                IF nextval('test_alert_kills') = 1 THEN
                    PERFORM pg_terminate_backend(pg_backend_pid());
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql"""
        )
        admin.execute(
            "CREATE TRIGGER test_kill_inserter BEFORE INSERT ON tracker_changealert "
            "FOR EACH ROW EXECUTE FUNCTION test_kill_inserter()"
        )
    try:
        yield
    finally:
        with admin_connection() as admin:
            admin.execute("DROP TRIGGER IF EXISTS test_kill_inserter ON tracker_changealert")
            admin.execute("DROP FUNCTION IF EXISTS test_kill_inserter()")
            admin.execute("DROP SEQUENCE IF EXISTS test_alert_kills")


def test_losing_the_database_mid_write_leaves_no_half_written_change(
    changed_source, kill_on_alert_insert
):
    source, _, _ = changed_source
    before = state(source)
    with pytest.raises((OperationalError, InterfaceError)):
        check_source(source)
    connection.close()

    # The version was inserted before the alert: the whole transaction went with it.
    assert SourceVersion.objects.filter(source=source).count() == 1
    assert not ChangeAlert.objects.exists()
    assert state(source) == before
    assert check_source(source).outcome == "changed"
    assert (SourceVersion.objects.count(), ChangeAlert.objects.count()) == (2, 1)


def test_a_worker_retries_a_check_that_lost_the_database(
    changed_source, kill_on_alert_insert, allow_local, start_worker
):
    source, _, _ = changed_source
    worker = start_worker(
        concurrency=1, env={"TRACKER_FETCH_ALLOW": f"127.0.0.1:{allow_local.port}"}
    )
    check_source_task.apply_async((source.pk,), queue=worker.queue)
    wait_until(lambda: ChangeAlert.objects.exists(), timeout=60, message="the retried check")
    worker.stop()
    assert "Retry in 0s" in worker.output()
    assert (SourceVersion.objects.count(), ChangeAlert.objects.count()) == (2, 1)


def test_a_check_whose_worker_is_killed_is_redelivered_and_recorded_once(
    changed_source, allow_local, start_worker
):
    source, hooks, _ = changed_source
    in_flight, release = threading.Event(), threading.Event()

    def hold_the_first_request():
        if not in_flight.is_set():
            in_flight.set()
            release.wait(timeout=120)

    hooks.append(hold_the_first_request)
    env = {
        "TRACKER_FETCH_ALLOW": f"127.0.0.1:{allow_local.port}",
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }
    first = start_worker(concurrency=1, env=env)
    try:
        check_source_task.apply_async((source.pk,), queue=first.queue)
        assert in_flight.wait(timeout=60), "the first worker never fetched the page"
        first.kill()  # mid-check: fetched, nothing recorded yet
        release.set()
        assert not ChangeAlert.objects.exists()

        # A starting worker hands out the tasks that are past their visibility timeout (and
        # then looks again only every ~100 s): start it once the task is past it.
        time.sleep(VISIBILITY_TIMEOUT + 1)
        second = start_worker(queue=first.queue, concurrency=1, env=env)
        try:
            wait_until(lambda: ChangeAlert.objects.exists(), timeout=150, message="redelivery")
        except AssertionError:
            raise AssertionError(f"no redelivery; the workers' log:\n{second.output()}") from None
        wait_until(lambda: second.succeeded() >= 1, message="the task's end")
    finally:
        release.set()
    assert (SourceVersion.objects.count(), ChangeAlert.objects.count()) == (2, 1)
    page_requests = [entry for entry, _ in allow_local.log if entry.path == "/p"]
    assert len(page_requests) == 3  # the baseline, the killed worker's, the redelivery's


def test_a_check_whose_pool_process_is_killed_is_redelivered_at_once(
    changed_source, allow_local, start_worker
):
    """Celery's default prefork pool: the OOM killer or a crash ends the child running the
    check, not the worker. The task goes back to the queue (task_reject_on_worker_lost) and
    the worker's next child runs it, in seconds, instead of waiting for the claim to run out."""
    source, hooks, _ = changed_source
    in_flight, release = threading.Event(), threading.Event()

    def hold_the_first_request():
        if not in_flight.is_set():
            in_flight.set()
            release.wait(timeout=120)

    hooks.append(hold_the_first_request)
    env = {"TRACKER_FETCH_ALLOW": f"127.0.0.1:{allow_local.port}"}
    worker = start_worker(concurrency=1, env=env, pool="prefork")
    try:
        check_source_task.apply_async((source.pk,), queue=worker.queue)
        assert in_flight.wait(timeout=60), "the pool process never fetched the page"
        (child,) = worker.children()
        os.kill(child, signal.SIGKILL)  # mid-check: fetched, nothing recorded yet
        release.set()
        killed_at = time.monotonic()
        try:
            wait_until(lambda: ChangeAlert.objects.exists(), timeout=60, message="redelivery")
        except AssertionError:
            raise AssertionError(f"no redelivery; the worker's log:\n{worker.output()}") from None
        redelivered_after = time.monotonic() - killed_at
        wait_until(lambda: worker.succeeded() >= 1, message="the task's end")
    finally:
        release.set()
    assert "WorkerLostError" in worker.output()
    assert (SourceVersion.objects.count(), ChangeAlert.objects.count()) == (2, 1)
    page_requests = [entry for entry, _ in allow_local.log if entry.path == "/p"]
    assert len(page_requests) == 3  # the baseline, the killed process's, the redelivery's
    assert redelivered_after < 60  # a bound (no hang until the claim runs out), not a timing
