"""Announce status changes and new evidence to registered webhooks: signed JSON, delivered
by Celery with retries, every attempt logged. Only published work is announced."""

import hashlib
import hmac
import json
import logging
import time
from functools import partial

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import fetching
from .models import Webhook, WebhookDelivery

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
    from .tasks import queue_delivery  # tasks builds on this module

    for delivery in deliveries:
        transaction.on_commit(partial(queue_delivery, delivery.pk))
    return deliveries


def announce_status_change(change):
    recommendation = change.recommendation
    if not recommendation.is_public:
        return []
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
            "evidence": sorted(change.evidence.values_list("pk", flat=True)),
            "recorded_at": change.recorded_at.isoformat(),
        },
    )


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
