"""Announce status changes and new evidence to registered webhooks: signed JSON, delivered
by Celery with retries, every attempt logged. Only published work is announced."""

import hashlib
import hmac
import json
import time
from functools import partial

from django.db import transaction
from django.utils import timezone

from . import fetching
from .models import Webhook, WebhookDelivery

SIGNATURE_HEADER = "X-Tracker-Signature"
TIMESTAMP_HEADER = "X-Tracker-Timestamp"


def sign(secret, timestamp, body):
    """Return the signature of `body` sent at `timestamp`: "sha256=" and the hex HMAC of
    "<timestamp>.<body>", so a receiver can refuse replays of old deliveries."""
    message = f"{timestamp}.".encode() + body
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
    from .tasks import deliver_webhook_task

    for delivery in deliveries:
        transaction.on_commit(partial(deliver_webhook_task.delay, delivery.pk))
    return deliveries


def announce_status_change(change):
    recommendation = change.recommendation
    if not recommendation.is_published:
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
    codes = sorted(
        evidence.recommendations.filter(is_published=True).values_list("code", flat=True)
    )
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

    Return True when the failure is worth retrying later (network trouble, 429, 5xx) and
    this was not the `final_attempt`; the delivery then stays pending.
    """
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "X-Tracker-Event": delivery.event,
        "X-Tracker-Delivery": str(delivery.pk),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(delivery.webhook.secret, timestamp, body),
    }
    attempts = delivery.attempts + 1
    try:
        status = fetching.post_json(delivery.webhook.url, body, headers=headers)
    except fetching.FetchError as error:
        retry = error.retryable and not final_attempt
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempts=attempts,
            last_error=error.reason,
            state=WebhookDelivery.State.PENDING if retry else WebhookDelivery.State.FAILED,
        )
        return retry
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=attempts,
        last_status_code=status,
        last_error="",
        state=WebhookDelivery.State.DELIVERED,
        delivered_at=timezone.now(),
    )
    return False
