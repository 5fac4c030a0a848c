"""Celery tasks: thin wrappers that re-fetch rows by id and call one domain function.

The webhook delivery task lives with the rest of the webhook story (webhooks.py); every task
keeps its registered "tracker.tasks.<name>", which queued messages and beat schedules name.
"""

import datetime
from functools import partial

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction

from . import digests, monitoring, observing, webhooks
from .models import DigestDelivery, Source, Subscription
from .queueing import enqueue, is_final_attempt, retry_later

# Retries of a check that failed on network trouble (see retry_later).
CHECK_RETRIES = 3
# A check put off because its host is busy waits this long for the next dispatch.
HOST_BUSY_DELAY = datetime.timedelta(minutes=1)
# A check's hard time limit: a fetch's whole deadline (30 s) and reading what it fetched. Its
# claim (monitoring.RUNNING_LEASE) and its host slot's lease (HOST_SLOT_LEASE) outlive it.
CHECK_TIME_LIMIT = 55


@shared_task(acks_late=True)
def dispatch_due_sources():
    """Queue a check of every due source (run every minute by beat; see
    monitoring.queue_due_checks), and the webhook deliveries the queue refused earlier."""
    queued = monitoring.queue_due_checks()
    webhooks.resend_unqueued_deliveries()
    return queued


@shared_task(acks_late=True)
def queue_checks_task(source_ids):
    """Queue the checks of a part of a dispatcher run (see monitoring.queue_due_checks)."""
    return monitoring.queue_checks(source_ids)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=CHECK_RETRIES,
    soft_time_limit=CHECK_TIME_LIMIT - 10,
    time_limit=CHECK_TIME_LIMIT,
)
def check_source_task(self, source_id):
    source = Source.objects.filter(pk=source_id, is_active=True).first()
    if source is None:
        return "gone"
    if not monitoring.start_claimed_check(source.pk):
        return "given up"
    try:
        slot = monitoring.acquire_host_slot(observing.origin_of(source.url))
    except monitoring.HostBusy:
        monitoring.defer_check(source, delay=HOST_BUSY_DELAY)
        return "deferred"
    final_attempt = is_final_attempt(self)
    try:
        result = monitoring.check_source(source, final_attempt=final_attempt)
    except (OperationalError, InterfaceError) as error:
        # The database went away mid-check: the check wrote nothing (one transaction), so
        # it is simply tried again; once retries run out, the claim's lease brings it back.
        if final_attempt:
            raise
        monitoring.hold_claim(source.pk)
        raise retry_later(self, error) from None
    finally:
        monitoring.release_host_slot(slot)
    if result.retryable and not final_attempt:
        monitoring.hold_claim(source.pk)
        raise retry_later(self, result.error)
    return result.outcome


# Retries of a digest that failed to send, with exponential backoff; with the first try,
# as many attempts as digests.MAX_ATTEMPTS allows.
DIGEST_RETRIES = digests.MAX_ATTEMPTS - 1


@shared_task(acks_late=True)
def send_due_digests_task():
    """Enqueue one digest task per due subscription (run hourly by beat), and the retried
    digests the queue refused earlier."""
    digests.resend_unqueued_digests()
    due = digests.due_subscriptions()
    for subscription, period in due:
        # A digest the queue refuses stays due: the next hourly run sends it.
        transaction.on_commit(partial(enqueue, send_digest_task, subscription.pk, period.key))
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
        failed = subscription.deliveries.filter(period=period).values_list("error", flat=True)
        raise retry_later(self, failed.first() or "the digest was not sent")
    return outcome
