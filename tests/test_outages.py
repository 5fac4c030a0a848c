"""Redis down: the site and API keep serving, nothing queued is lost, and the dispatcher
catches up when Redis is back. Each test runs its own redis-server and stops it for real."""

import ast
import datetime
import socket
import threading

import pytest
from django.contrib.admin import helpers
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import RecommendationFactory, SubscriptionFactory
from tests.support.outages import celery_broker, queued_tasks
from tests.support.pages import local_url, page
from tests.support.workers import wait_until
from tracker import monitoring, tasks, webhooks
from tracker.models import DigestDelivery, Source, SourceClaim, Webhook, WebhookDelivery
from tracker.monitoring import Outcome, claim_due_sources, release_claims

CHECK = "tracker.tasks.check_source_task"
QUEUE_CHECKS = "tracker.tasks.queue_checks_task"
DELIVER = "tracker.tasks.deliver_webhook_task"
SEND_DIGEST = "tracker.tasks.send_digest_task"


def queued_checks(server):
    """The ids of the sources whose checks wait in `server`'s queue: one message a check, or
    one message a part of a dispatcher run (monitoring.FAN_OUT sources)."""
    ids = []
    for name, args in queued_tasks(server):
        assert name in (CHECK, QUEUE_CHECKS), name
        value = ast.literal_eval(args)[0]
        ids += value if name == QUEUE_CHECKS else [value]
    return sorted(ids)


def cache_at(server):
    return {
        "default": {
            "BACKEND": "tracker.cache.FailSoftRedisCache",
            "LOCATION": server.url(1),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def due_sources(count):
    return [Source.objects.create(url=f"https://example.org/page-{n}") for n in range(count)]


def is_due(source, now=None):
    """Due and not claimed: the next dispatcher run queues it."""
    source.refresh_from_db()
    return (
        source.next_check_at <= (now or timezone.now())
        and not SourceClaim.objects.filter(source=source).exists()
    )


@pytest.mark.django_db
def test_the_api_and_admin_serve_while_the_cache_is_down(own_redis, settings, admin_client):
    settings.CACHES = cache_at(own_redis)
    settings.TRACKER_API_ANON_RATE = "2/minute"
    RecommendationFactory(code="WRC-2024-1", is_published=True)
    api = APIClient()
    path = reverse("api:recommendation-list")

    own_redis.stop()
    statuses = {api.get(path).status_code for _ in range(4)}
    assert statuses == {200}  # no throttle counts to keep, but no 500 either
    assert admin_client.get(reverse("admin:tracker_recommendation_changelist")).status_code == 200

    own_redis.start()  # back, empty: throttling counts again
    assert [api.get(path).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.django_db
def test_host_slots_are_not_handed_out_while_the_cache_is_down(own_redis, settings):
    settings.CACHES = cache_at(own_redis)
    own_redis.stop()
    with pytest.raises(monitoring.HostBusy):
        monitoring.acquire_host_slot("example.org:443")
    own_redis.start()
    monitoring.release_host_slot(monitoring.acquire_host_slot("example.org:443"))


@pytest.mark.django_db
@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_a_bulk_check_goes_on_while_the_cache_is_down(own_redis, settings, allow_local, processes):
    # No worker gets a host slot then, so none fetches: the bulk run's own limit is the limit.
    settings.CACHES = cache_at(own_redis)
    own_redis.stop()
    allow_local.expect_request("/p").respond_with_data(page(), content_type="text/html")
    sources = [Source.objects.create(url=local_url(allow_local, f"/p?n={n}")) for n in range(3)]
    outcomes = monitoring.check_sources(sources, processes=processes)
    assert outcomes == {Outcome.FIRST_VERSION: 3}


@pytest.mark.django_db
def test_the_dispatcher_leaves_sources_due_while_the_queue_is_down_then_catches_up(own_redis):
    sources = due_sources(3)
    later = Source.objects.create(
        url="https://example.org/later", next_check_at=timezone.now() + datetime.timedelta(hours=1)
    )
    with celery_broker(own_redis.url(0)):
        own_redis.stop()
        assert tasks.dispatch_due_sources() == 0
        assert all(is_due(source) for source in sources)  # the claims were given back

        own_redis.start()
        assert tasks.dispatch_due_sources() == 3
        assert tasks.dispatch_due_sources() == 0  # nothing is sent twice
    assert queued_checks(own_redis) == sorted(s.pk for s in sources)
    assert not any(is_due(source) for source in sources)  # claimed now
    assert not is_due(later)


@pytest.mark.django_db
def test_checks_lost_with_a_redis_restarted_empty_are_queued_again_at_the_next_dispatch(
    own_redis,
):
    sources = due_sources(3)
    with celery_broker(own_redis.url(0)):
        assert tasks.dispatch_due_sources() == 3
        assert len(queued_checks(own_redis)) == 3
        assert tasks.dispatch_due_sources() == 0  # queued, and the queue kept them

        own_redis.stop()  # no append-only file: the queued checks die with it
        own_redis.start()
        assert queued_tasks(own_redis) == []
        # The queue's new life says the old claims will never be run: not 15 minutes later.
        assert tasks.dispatch_due_sources() == 3
        assert tasks.dispatch_due_sources() == 0
    assert queued_checks(own_redis) == sorted(s.pk for s in sources)


@pytest.mark.django_db(transaction=True)
def test_a_prefork_worker_checks_each_source_once_after_redis_restarted_empty(
    own_redis, allow_local, start_worker, settings
):
    pages = [f"/lost-{n}" for n in range(3)]
    for path in pages:
        allow_local.expect_request(path).respond_with_data(page(path), content_type="text/html")
    sources = [Source.objects.create(url=local_url(allow_local, path)) for path in pages]
    settings.CACHES = cache_at(own_redis)  # host slots where the worker counts them too
    with celery_broker(own_redis.url(0)):
        assert tasks.dispatch_due_sources() == 3
        own_redis.stop()  # before any worker took them: the queued checks are gone
        own_redis.start()
        worker = start_worker(
            queue="celery",  # the dispatcher's queue, on this test's own Redis
            concurrency=2,
            env={
                "CELERY_BROKER_URL": own_redis.url(0),
                "TRACKER_FETCH_ALLOW": f"127.0.0.1:{allow_local.port}",
            },
        )
        assert tasks.dispatch_due_sources() == 3  # the next run, not 15 minutes later
        wait_until(
            lambda: all(source.versions.exists() for source in sources),
            timeout=60,
            message="every source checked",
        )
        wait_until(lambda: worker.succeeded() >= 4, message="the part's and the checks' end")
        assert tasks.dispatch_due_sources() == 0
    fetched = sorted(entry.path for entry, _ in allow_local.log)
    assert fetched == sorted(pages)  # each once: nothing lost, nothing twice
    assert not SourceClaim.objects.exists()


@pytest.mark.django_db
def test_one_dispatch_queues_every_due_source_once_however_many_batches_that_takes(own_redis):
    count = 2 * monitoring.DISPATCH_BATCH + 7
    Source.objects.bulk_create(
        Source(url=f"https://example.org/many-{n}", next_check_at=timezone.now())
        for n in range(count)
    )
    with celery_broker(own_redis.url(0)):
        assert tasks.dispatch_due_sources() == count  # not a batch a minute
        assert tasks.dispatch_due_sources() == 0  # each waits in the queue once
    queued = queued_checks(own_redis)
    assert len(queued) == len(set(queued)) == count
    # The dispatcher's own messages: one a hundred sources, for a worker to fan out.
    assert len(queued_tasks(own_redis)) == sum(
        -(-part // monitoring.FAN_OUT) for part in (monitoring.DISPATCH_BATCH,) * 2 + (7,)
    )


@pytest.mark.django_db
def test_a_released_claim_frees_the_source_and_keeps_its_schedule():
    source, rescheduled = due_sources(2)
    now = timezone.now()
    assert sorted(claim_due_sources(now=now)) == sorted([source.pk, rescheduled.pk])
    later = now + datetime.timedelta(days=1)
    Source.objects.filter(pk=rescheduled.pk).update(next_check_at=later)
    release_claims([source.pk, rescheduled.pk], claimed_at=now)
    assert is_due(source, now)
    rescheduled.refresh_from_db()
    assert rescheduled.next_check_at == later  # staff's move stands


def source_to_check():
    source = Source.objects.create(url="https://example.org/page")
    Source.objects.filter(pk=source.pk).update(
        next_check_at=timezone.now() + datetime.timedelta(hours=6)
    )
    return source, "admin:tracker_source_changelist", "check_now"


def failed_delivery():
    hook = Webhook.objects.create(url="https://partner.example.org/hook")
    delivery = WebhookDelivery.objects.create(
        webhook=hook, event="evidence", payload={}, state=WebhookDelivery.State.FAILED, attempts=6
    )
    return delivery, "admin:tracker_webhookdelivery_changelist", "retry"


def failed_digest():
    subscription = SubscriptionFactory(email="ana@example.org")
    digest = DigestDelivery.objects.create(
        subscription=subscription,
        period="2024-W10",
        period_start=datetime.date(2024, 3, 4),
        period_end=datetime.date(2024, 3, 10),
        state=DigestDelivery.State.FAILED,
        attempts=5,
    )
    return digest, "admin:tracker_digestdelivery_changelist", "retry"


@pytest.mark.parametrize(
    ("make", "noun", "sent_later", "task"),
    [
        (source_to_check, "source check(s)", tasks.dispatch_due_sources, QUEUE_CHECKS),
        (failed_delivery, "delivery(ies)", webhooks.resend_unqueued_deliveries, DELIVER),
        (failed_digest, "digest(s)", tasks.send_due_digests_task, SEND_DIGEST),
    ],
    ids=["check now", "webhook retry", "digest retry"],
)
@pytest.mark.django_db
def test_staff_asking_while_the_queue_is_down_get_one_answer_and_the_work_goes_later(
    own_redis, admin_client, make, noun, sent_later, task
):
    """Check now, webhook retry and digest retry: the same answer, and the work is kept
    until the dispatcher that owns it runs with the queue back."""
    row, changelist, action = make()
    form = {"action": action, helpers.ACTION_CHECKBOX_NAME: [row.pk]}
    with celery_broker(own_redis.url(0)):
        own_redis.stop()
        response = admin_client.post(reverse(changelist), form, follow=True)
        assert response.status_code == 200
        assert (
            f"The task queue is unreachable: 1 {noun} kept, to be sent as soon as it is back."
            in response.text
        )
        own_redis.start()
        sent_later()
    assert [name for name, _args in queued_tasks(own_redis)] == [task]


def test_a_hung_cache_is_left_alone_for_a_moment_instead_of_waited_on_each_call(
    settings, monkeypatch
):
    """A server that accepts connections and never answers: the first call waits out its
    timeout, the next ones skip the cache without connecting again."""
    from tracker import cache as fail_soft

    monkeypatch.setattr(fail_soft, "_paused_until", 0.0)
    accepted = []
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)

        def accept_and_stay_silent():
            while True:
                try:
                    accepted.append(hung.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept_and_stay_silent, daemon=True).start()
        settings.CACHES = {
            "default": {
                "BACKEND": "tracker.cache.FailSoftRedisCache",
                "LOCATION": f"redis://127.0.0.1:{hung.getsockname()[1]}/1",
                "OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3},
            }
        }
        from django.core.cache import cache

        assert cache.get("a") is None  # waited out the timeout once
        connections_tried = len(accepted)
        assert connections_tried >= 1
        for index in range(10):
            assert cache.get(f"key-{index}") is None
            cache.set(f"key-{index}", index)
        assert len(accepted) == connections_tried  # no call went to the hung server again

        monkeypatch.setattr(fail_soft, "_paused_until", 0.0)  # the pause is over
        cache.get("b")
        assert len(accepted) > connections_tried  # and Redis is tried again
        for connection in accepted:
            connection.close()
