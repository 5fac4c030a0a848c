"""Announce status changes and new evidence to registered webhooks: signed JSON, delivered
by Celery with retries, every attempt logged. Only published work is announced.

The whole story lives here: the payloads, the delivery task, queueing it after commit, the
resend of deliveries the queue refused, and the staff's retry of failed ones. Status changes
arrive through the models' `status_changed` signal (connected in TrackerConfig.ready), so the
models never import this module.
"""

import hashlib
import hmac
import json
import logging
import time
from functools import partial

from celery import shared_task
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import fetching
from .models import Webhook, WebhookDelivery
from .queueing import NOT_QUEUED, Queued, enqueue, is_final_attempt, retry_later

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Tracker-Signature"
TIMESTAMP_HEADER = "X-Tracker-Timestamp"


def sign(secret, timestamp, delivery_id, body):
    """Return the signature of a delivery: "sha256=" and the hex HMAC-SHA256 of
    "<timestamp>.<delivery id>.<body>", so a receiver can refuse old or repeated deliveries."""
    message = f"{timestamp}.{delivery_id}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def announce(event, payload):
    """Queue `payload` for every active webhook taking `event`, sent once the current
    transaction commits (nothing is sent for work that was rolled back)."""
    takes_event = {
        Webhook.Event.STATUS_CHANGE: "sends_status_changes",
        Webhook.Event.EVIDENCE: "sends_evidence",
    }[event]
    webhooks = Webhook.objects.filter(is_active=True, **{takes_event: True})
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook=webhook, event=event, payload=payload) for webhook in webhooks
    )
    for delivery in deliveries:
        transaction.on_commit(partial(queue_delivery, delivery.pk))
    return deliveries


def announce_status_change(change, *, evidence=None):
    """Announce `change` (citing `evidence`, read from the change when not given) if its
    recommendation is public."""
    recommendation = change.recommendation
    if not recommendation.is_public:
        return []
    if evidence is None:
        evidence = change.evidence.all()
    return announce(
        Webhook.Event.STATUS_CHANGE,
        {
            "event": Webhook.Event.STATUS_CHANGE.value,
            "id": change.pk,
            "recommendation": {
                "id": recommendation.pk,
                "code": recommendation.code,
                "title": recommendation.title,
                "document": recommendation.document_id,
            },
            "status": change.status,
            "effective_on": change.effective_on.isoformat(),
            "rationale": change.rationale,
            "evidence": sorted(item.pk for item in evidence),
            "recorded_at": change.recorded_at.isoformat(),
        },
    )


def announce_recorded_status(sender, *, change, evidence, **kwargs):
    """Receive models.status_changed: announce the change inside its transaction."""
    announce_status_change(change, evidence=evidence)


def announce_evidence(evidence):
    codes = sorted(evidence.recommendations.public().values_list("code", flat=True))
    if not codes:
        return []  # evidence of drafts only stays private
    return announce(
        Webhook.Event.EVIDENCE,
        {
            "event": Webhook.Event.EVIDENCE.value,
            "id": evidence.pk,
            "title": evidence.title,
            "url": evidence.url,
            "outlet": evidence.outlet,
            "published_on": evidence.published_on.isoformat() if evidence.published_on else None,
            "kind": evidence.kind,
            "effect": evidence.effect,
            "recommendations": codes,
        },
    )


def deliver(delivery, *, final_attempt=True):
    """POST `delivery` to its webhook, signed, through the fetch guard; log the attempt.

    1. Claim the attempt with a conditional update, so a redelivered task sends nothing.
    2. A webhook deactivated, or not on HTTPS, fails the delivery without sending.
    3. Return True when the failure is worth retrying later (network trouble, 429, 5xx)
       and this was not the `final_attempt`; the delivery then stays pending.
    """
    webhook = delivery.webhook
    if not webhook.is_active or not webhook.uses_allowed_scheme():
        reason = "the webhook is inactive" if not webhook.is_active else "not an HTTPS URL"
        _finish(delivery, state=WebhookDelivery.State.FAILED, last_error=reason)
        return False
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=WebhookDelivery.State.PENDING, attempts=delivery.attempts
    ).update(attempts=F("attempts") + 1)
    if not claimed:
        return False  # another worker has this attempt, or it is done
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "X-Tracker-Event": delivery.event,
        "X-Tracker-Delivery": str(delivery.pk),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(webhook.secret, timestamp, delivery.pk, body),
    }
    try:
        status = fetching.post_json(webhook.url, body, headers=headers)
    except fetching.FetchError as error:
        retry = error.retryable and not final_attempt
        state = WebhookDelivery.State.PENDING if retry else WebhookDelivery.State.FAILED
        _finish(delivery, state=state, last_error=error.reason)
        return retry
    except Exception as error:
        logger.exception("webhook delivery %s failed", delivery.pk)
        _finish(delivery, state=WebhookDelivery.State.FAILED, last_error=f"unexpected: {error}")
        return False
    _finish(
        delivery,
        state=WebhookDelivery.State.DELIVERED,
        last_status_code=status,
        last_error="",
        delivered_at=timezone.now(),
    )
    return False


def _finish(delivery, **fields):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)


# -- Queueing -------------------------------------------------------------------------------

# Retries of a webhook delivery on network trouble, with exponential backoff.
DELIVERY_RETRIES = 5


@shared_task(
    name="tracker.tasks.deliver_webhook_task",  # its name from before it lived here
    bind=True,
    acks_late=True,
    max_retries=DELIVERY_RETRIES,
    soft_time_limit=45,
    time_limit=60,
)
def deliver_webhook_task(self, delivery_id):
    delivery = (
        WebhookDelivery.objects.select_related("webhook")
        .filter(pk=delivery_id, state=WebhookDelivery.State.PENDING)
        .first()
    )
    if delivery is None:
        return "done"  # delivered or given up already: a redelivered task sends nothing
    if deliver(delivery, final_attempt=is_final_attempt(self)):
        failed = WebhookDelivery.objects.filter(pk=delivery.pk).values_list("last_error")
        raise retry_later(self, failed.get()[0] or "the endpoint did not take the delivery")
    return "sent"


def queue_delivery(delivery_id):
    """Queue a pending delivery; if the queue refuses it, mark it for the dispatcher
    (resend_unqueued_deliveries)."""
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


def retry_deliveries(deliveries):
    """Send the failed ones among `deliveries` (a queryset) again.

    They go back to pending first, so a queue outage loses none: those the queue refuses
    are marked and the dispatcher sends them once it is back. Return a Queued.
    """
    retried = list(
        deliveries.filter(state=WebhookDelivery.State.FAILED).values_list("pk", flat=True)
    )
    WebhookDelivery.objects.filter(pk__in=retried).update(state=WebhookDelivery.State.PENDING)
    sent = sum(queue_delivery(delivery_id) for delivery_id in retried)
    return Queued(sent=sent, kept=len(retried) - sent)
