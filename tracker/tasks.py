"""Celery tasks: thin wrappers that re-fetch rows by id and call one domain function."""

import datetime
import logging
from functools import partial

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as QueueUnreachable

from . import digests, monitoring, observing, webhooks
from .models import DigestDelivery, Source, Subscription, WebhookDelivery

logger = logging.getLogger(__name__)

# Retries of a check that failed on network trouble (see retry_later).
CHECK_RETRIES = 3
# A check put off because its host is busy waits this long for the next dispatch.
HOST_BUSY_DELAY = datetime.timedelta(minutes=1)
# A check's hard time limit; its host slot's lease (monitoring.HOST_SLOT_LEASE) outlives it.
CHECK_TIME_LIMIT = 150


def is_final_attempt(task):
    """Whether a failure now is final: retries used up, or an in-process (eager) run, such
    as the admin's "check now" in the demo, which does not retry."""
    return task.request.is_eager or task.request.retries >= task.max_retries


def retry_later(task):
    """The retry of `task`, after exponential backoff from TRACKER_CHECK_RETRY_SECONDS."""
    return task.retry(countdown=settings.TRACKER_CHECK_RETRY_SECONDS * 2**task.request.retries)


def enqueue(task, *args):
    """Send `task` to the queue; return False, and log, when the broker cannot be reached.

    The caller's work is already in the database, so a Redis outage must neither lose it nor
    fail the request: each caller leaves a mark for the dispatcher to pick the work up later.
    """
    try:
        task.delay(*args)
    except QueueUnreachable as error:
        logger.warning("task queue unreachable, %s%r not sent: %s", task.name, args, error)
        return False
    return True


@shared_task(acks_late=True)
def dispatch_due_sources():
    """Claim the due sources and enqueue one check each (run every minute by beat).

    Sources the queue refuses are released at once, so they stay due and the next run,
    once Redis is back, sends them; webhook deliveries it refused earlier are sent again too.
    """
    now = timezone.now()
    claimed = monitoring.claim_due_sources(now=now)
    for sent, source_id in enumerate(claimed):
        if not enqueue(check_source_task, source_id):
            monitoring.release_claims(claimed[sent:], claimed_at=now)
            return sent
    resend_unqueued_deliveries()
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
        slot = monitoring.acquire_host_slot(observing.origin_of(source.url))
    except monitoring.HostBusy:
        monitoring.defer_check(source, delay=HOST_BUSY_DELAY)
        return "deferred"
    final_attempt = is_final_attempt(self)
    try:
        result = monitoring.check_source(source, final_attempt=final_attempt)
    except (OperationalError, InterfaceError):
        # The database went away mid-check: the check wrote nothing (one transaction), so
        # it is simply tried again; once retries run out, the claim's lease brings it back.
        if final_attempt:
            raise
        raise retry_later(self) from None
    finally:
        monitoring.release_host_slot(slot)
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


# Marks a pending delivery whose task the queue refused; the dispatcher sends it again.
NOT_QUEUED = "not queued yet: the task queue was unreachable"


def queue_delivery(delivery_id):
    """Queue a pending delivery; if the queue refuses it, mark it for the dispatcher."""
    if enqueue(deliver_webhook_task, delivery_id):
        return True
    WebhookDelivery.objects.filter(pk=delivery_id, state=WebhookDelivery.State.PENDING).update(
        last_error=NOT_QUEUED
    )
    return False


def resend_unqueued_deliveries():
    """Queue again the deliveries the queue refused; return how many were sent."""
    unqueued = WebhookDelivery.objects.filter(
        state=WebhookDelivery.State.PENDING, last_error=NOT_QUEUED
    ).values_list("pk", flat=True)
    sent = 0
    for delivery_id in list(unqueued):
        if not enqueue(deliver_webhook_task, delivery_id):
            break
        WebhookDelivery.objects.filter(pk=delivery_id, last_error=NOT_QUEUED).update(last_error="")
        sent += 1
    return sent


# Retries of a digest that failed to send, with exponential backoff; with the first try,
# as many attempts as digests.MAX_ATTEMPTS allows.
DIGEST_RETRIES = digests.MAX_ATTEMPTS - 1


@shared_task(acks_late=True)
def send_due_digests_task():
    """Enqueue one digest task per due subscription (run hourly by beat)."""
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
        raise retry_later(self)
    return outcome
