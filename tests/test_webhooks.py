"""Webhooks: signed events for status changes and new evidence, delivered with a log."""

import datetime
import hashlib
import hmac
import json

import pytest
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient
from werkzeug import Response

from tests.factories import DocumentFactory, EvidenceFactory, RecommendationFactory
from tests.support.outages import celery_broker, queued_tasks
from tests.support.pages import local_url
from tracker import tasks, webhooks
from tracker.models import Recommendation, StatusChange, Webhook, WebhookDelivery
from tracker.queueing import NOT_QUEUED

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]


class Receiver:
    """A webhook receiver on the local test server, answering with `status`."""

    def __init__(self, status=200):
        self.status = status
        self.requests = []

    def handler(self, request):
        self.requests.append({"headers": dict(request.headers), "body": request.get_data()})
        return Response("ok", status=self.status)


@pytest.fixture
def receiver(allow_local):
    received = Receiver()
    allow_local.expect_request("/hook", method="POST").respond_with_handler(received.handler)
    return received


@pytest.fixture
def webhook(allow_local, receiver):
    return Webhook.objects.create(url=local_url(allow_local, "/hook"), description="Partner")


def record(recommendation, **kwargs):
    return recommendation.record_status(
        Recommendation.Status.IN_PROGRESS,
        effective_on=datetime.date(2024, 8, 1),
        rationale="Announced.",
        **kwargs,
    )


def test_a_status_change_is_delivered_signed(webhook, receiver, django_capture_on_commit_callbacks):
    recommendation = RecommendationFactory(code="WRC-2024-1.4")
    with django_capture_on_commit_callbacks(execute=True):
        change = record(recommendation)
    (request,) = receiver.requests
    payload = json.loads(request["body"])
    assert payload["event"] == "status_change"
    assert payload["id"] == change.pk
    assert payload["recommendation"]["code"] == "WRC-2024-1.4"
    assert payload["status"] == "in_progress" and payload["effective_on"] == "2024-08-01"
    timestamp = request["headers"]["X-Tracker-Timestamp"]
    delivery_id = request["headers"]["X-Tracker-Delivery"]
    signed = f"{timestamp}.{delivery_id}.".encode() + request["body"]
    expected = hmac.new(webhook.secret.encode(), signed, hashlib.sha256).hexdigest()
    assert request["headers"]["X-Tracker-Signature"] == f"sha256={expected}"
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookDelivery.State.DELIVERED
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)


def test_nothing_is_sent_for_a_rolled_back_change(webhook, receiver):
    recommendation = RecommendationFactory()
    record(recommendation)  # inside the test's transaction, never committed
    assert not receiver.requests


def test_drafts_are_never_announced(webhook, receiver, django_capture_on_commit_callbacks):
    draft = RecommendationFactory(is_published=False)
    with django_capture_on_commit_callbacks(execute=True):
        record(draft)
        evidence = EvidenceFactory()
        evidence.recommendations.add(draft)
        webhooks.announce_evidence(evidence)
    assert not receiver.requests
    assert not WebhookDelivery.objects.exists()


def test_new_evidence_is_announced_with_its_published_recommendations(
    webhook, receiver, django_capture_on_commit_callbacks
):
    published = RecommendationFactory(code="WRC-2024-1.6")
    draft = RecommendationFactory(code="WRC-2024-9", is_published=False)
    evidence = EvidenceFactory(title="CAM expanded")
    evidence.recommendations.add(published, draft)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.announce_evidence(evidence)
    payload = json.loads(receiver.requests[0]["body"])
    assert payload["event"] == "evidence"
    assert payload["title"] == "CAM expanded"
    assert payload["recommendations"] == ["WRC-2024-1.6"]


def test_a_failing_receiver_is_logged(allow_local, django_capture_on_commit_callbacks):
    failing = Receiver(status=500)
    allow_local.expect_request("/down", method="POST").respond_with_handler(failing.handler)
    Webhook.objects.create(url=local_url(allow_local, "/down"))
    with django_capture_on_commit_callbacks(execute=True):
        record(RecommendationFactory())
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookDelivery.State.FAILED
    assert "500" in delivery.last_error
    assert delivery.attempts == 1


def test_a_retryable_failure_stays_pending_until_the_last_attempt(allow_local):
    failing = Receiver(status=503)
    allow_local.expect_request("/busy", method="POST").respond_with_handler(failing.handler)
    hook = Webhook.objects.create(url=local_url(allow_local, "/busy"))
    delivery = WebhookDelivery.objects.create(webhook=hook, event="evidence", payload={"a": 1})
    assert webhooks.deliver(delivery, final_attempt=False) is True
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (WebhookDelivery.State.PENDING, 1)
    assert webhooks.deliver(delivery, final_attempt=True) is False
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (WebhookDelivery.State.FAILED, 2)


def test_the_fetch_guard_applies_to_webhooks(django_capture_on_commit_callbacks):
    Webhook.objects.create(url="https://10.0.0.5/hook")
    with django_capture_on_commit_callbacks(execute=True):
        record(RecommendationFactory())
    delivery = WebhookDelivery.objects.get()
    assert delivery.state == WebhookDelivery.State.FAILED
    assert "private address" in delivery.last_error


def test_a_redirecting_receiver_is_not_followed(allow_local):
    allow_local.expect_request("/moved", method="POST").respond_with_data(
        "", status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"}
    )
    hook = Webhook.objects.create(url=local_url(allow_local, "/moved"))
    delivery = WebhookDelivery.objects.create(webhook=hook, event="evidence", payload={})
    webhooks.deliver(delivery)
    delivery.refresh_from_db()
    assert "redirects are not followed" in delivery.last_error


def test_webhooks_are_https_only_unless_allowed_for_tests(allow_local):
    with pytest.raises(ValidationError, match="HTTPS"):
        Webhook(url="http://partner.example.org/hook").full_clean()
    Webhook(url="https://partner.example.org/hook").full_clean()
    Webhook(url=local_url(allow_local, "/hook")).full_clean()


def test_the_admin_lists_deliveries_and_retries_failures(
    client, admin_user, webhook, receiver, django_capture_on_commit_callbacks
):
    delivery = WebhookDelivery.objects.create(
        webhook=webhook, event="evidence", payload={"a": 1}, state="failed", attempts=1
    )
    client.force_login(admin_user)
    assert client.get(reverse("admin:tracker_webhook_change", args=[webhook.pk])).status_code == 200
    changelist = reverse("admin:tracker_webhookdelivery_changelist")
    assert client.get(changelist).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(changelist, {"action": "retry", "_selected_action": [delivery.pk]})
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.DELIVERED
    assert delivery.attempts == 2
    assert json.loads(receiver.requests[0]["body"]) == {"a": 1}


def test_a_redelivered_task_sends_nothing_twice(webhook, receiver):
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="evidence", payload={})
    stale = WebhookDelivery.objects.get(pk=delivery.pk)  # a second copy of the same task
    webhooks.deliver(delivery)
    webhooks.deliver(stale)
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (WebhookDelivery.State.DELIVERED, 1)


def test_a_deactivated_webhook_receives_nothing_more(webhook, receiver):
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="evidence", payload={})
    Webhook.objects.filter(pk=webhook.pk).update(is_active=False)
    delivery.refresh_from_db()
    webhooks.deliver(delivery)
    assert not receiver.requests
    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.FAILED
    assert "inactive" in delivery.last_error


# -- When the queue is down (a redis-server of the test's own, stopped for real) ----------

DELIVER = "tracker.tasks.deliver_webhook_task"


@pytest.mark.django_db(transaction=True)
def test_a_status_change_is_kept_and_announced_later_when_the_queue_is_down(own_redis, admin_user):
    recommendation = RecommendationFactory(
        document=DocumentFactory(code="WRC-2024"), code="WRC-2024-1", is_published=True
    )
    Webhook.objects.create(url="https://partner.example.org/hook")
    api = APIClient()
    api.force_authenticate(admin_user)
    path = reverse("api:recommendation-record-status", args=[recommendation.pk])
    with celery_broker(own_redis.url(0)):
        own_redis.stop()
        response = api.post(
            path,
            {"status": "in_progress", "effective_on": "2024-08-01", "rationale": "Announced."},
            format="json",
        )
        assert response.status_code == 201  # the request's work is not lost to the outage
        assert StatusChange.objects.filter(recommendation=recommendation).count() == 1
        delivery = WebhookDelivery.objects.get()
        assert delivery.state == WebhookDelivery.State.PENDING
        assert delivery.last_error == NOT_QUEUED

        own_redis.start()
        tasks.dispatch_due_sources()
    assert queued_tasks(own_redis) == [(DELIVER, f"({delivery.pk},)")]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_error) == (WebhookDelivery.State.PENDING, "")
    assert webhooks.resend_unqueued_deliveries() == 0  # sent once


@pytest.mark.django_db
def test_retrying_failed_deliveries_while_the_queue_is_down_says_so(own_redis, admin_client):
    hook = Webhook.objects.create(url="https://partner.example.org/hook")
    delivery = WebhookDelivery.objects.create(
        webhook=hook, event="evidence", payload={}, state=WebhookDelivery.State.FAILED, attempts=6
    )
    changelist = reverse("admin:tracker_webhookdelivery_changelist")
    form = {"action": "retry", helpers.ACTION_CHECKBOX_NAME: [delivery.pk]}
    with celery_broker(own_redis.url(0)):
        own_redis.stop()
        response = admin_client.post(changelist, form, follow=True)
        assert "The task queue is unreachable: 1 delivery(ies) kept" in response.text
        delivery.refresh_from_db()
        assert (delivery.state, delivery.last_error) == ("pending", NOT_QUEUED)

        own_redis.start()
        assert webhooks.resend_unqueued_deliveries() == 1
    assert queued_tasks(own_redis) == [(DELIVER, f"({delivery.pk},)")]
