"""Celery tasks: thin wrappers that re-fetch rows by id and call one domain function."""

import datetime
from functools import partial

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from . import digests, monitoring, webhooks
from .models import DigestDelivery, Source, Subscription, WebhookDelivery

# Retries of a check that failed on network trouble (see retry_later).
CHECK_RETRIES = 3
# A check put off because its host is busy waits this long for the next dispatch.
HOST_BUSY_DELAY = datetime.timedelta(minutes=1)
# How long a host slot outlives a check that never gives it back (longer than the time limit).
CHECK_TIME_LIMIT = 150
HOST_SLOT_LEASE = CHECK_TIME_LIMIT + 30


class HostBusy(Exception):
    """Too many checks of the same host are running right now."""


def acquire_host_slot(origin, *, limit=monitoring.MAX_REQUESTS_PER_HOST):
    """Take one of the `limit` request slots of `origin`, shared by all workers through the
    cache, and return its key; raise HostBusy when all are taken.

    Each slot is its own key, taken with an atomic add, so counts cannot drift; a slot whose
    worker died is free again when its lease runs out.
    """
    for index in range(limit):
        key = f"tracker:host-slot:{origin}:{index}"
        if cache.add(key, "held", timeout=HOST_SLOT_LEASE):
            return key
    raise HostBusy(origin)


def release_host_slot(key):
    cache.delete(key)


def is_final_attempt(task):
    """Whether a failure now is final: retries used up, or an in-process (eager) run, such
    as the admin's "check now" in the demo, which does not retry."""
    return task.request.is_eager or task.request.retries >= task.max_retries


def retry_later(task):
    """The retry of `task`, after exponential backoff from TRACKER_CHECK_RETRY_SECONDS."""
    return task.retry(countdown=settings.TRACKER_CHECK_RETRY_SECONDS * 2**task.request.retries)


@shared_task(acks_late=True)
def dispatch_due_sources():
    """Claim the due sources and enqueue one check each (run every minute by beat)."""
    claimed = monitoring.claim_due_sources()
    for source_id in claimed:
        check_source_task.delay(source_id)
    return len(claimed)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=CHECK_RETRIES,
    soft_time_limit=CHECK_TIME_LIMIT - 30,
    time_limit=CHECK_TIME_LIMIT,
)
def check_source_task(self, source_id):
    source = Source.objects.filter(pk=source_id, is_active=True).first()
    if source is None:
        return "gone"
    try:
        slot = acquire_host_slot(monitoring.origin_of(source.url))
    except HostBusy:
        monitoring.defer_check(source, delay=HOST_BUSY_DELAY)
        return "deferred"
    final_attempt = is_final_attempt(self)
    try:
        result = monitoring.check_source(source, final_attempt=final_attempt)
    finally:
        release_host_slot(slot)
    if result.retryable and not final_attempt:
        raise retry_later(self)
    return result.outcome


# Retries of a webhook delivery on network trouble, with exponential backoff.
DELIVERY_RETRIES = 5


@shared_task(
    bind=True, acks_late=True, max_retries=DELIVERY_RETRIES, soft_time_limit=45, time_limit=60
)
def deliver_webhook_task(self, delivery_id):
    delivery = (
        WebhookDelivery.objects.select_related("webhook")
        .filter(pk=delivery_id, state=WebhookDelivery.State.PENDING)
        .first()
    )
    if delivery is None:
        return "done"  # delivered or given up already: a redelivered task sends nothing
    if webhooks.deliver(delivery, final_attempt=is_final_attempt(self)):
        raise retry_later(self)
    return "sent"


# Retries of a digest that failed to send, with exponential backoff; with the first try,
# as many attempts as digests.MAX_ATTEMPTS allows.
DIGEST_RETRIES = digests.MAX_ATTEMPTS - 1


@shared_task(acks_late=True)
def send_due_digests_task():
    """Enqueue one digest task per due subscription (run hourly by beat)."""
    due = digests.due_subscriptions()
    for subscription, period in due:
        transaction.on_commit(partial(send_digest_task.delay, subscription.pk, period.key))
    return len(due)


@shared_task(
    bind=True, acks_late=True, max_retries=DIGEST_RETRIES, soft_time_limit=60, time_limit=90
)
def send_digest_task(self, subscription_id, period):
    subscription = Subscription.objects.active().select_related("user").filter(pk=subscription_id)
    subscription = subscription.first()
    if subscription is None:
        return "gone"  # unsubscribed (or deleted) since it was queued
    outcome = digests.send_digest(subscription, digests.parse_period(period))
    if outcome == DigestDelivery.State.FAILED and not is_final_attempt(self):
        raise retry_later(self)
    return outcome
