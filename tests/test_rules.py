"""One place per promise: each rule the product keeps lives in one function or queryset method
of tracker.models, and the places that show or act on it agree."""

import datetime
import re

import time_machine
from django.test import override_settings
from django.urls import reverse

from tests.factories import RecommendationFactory, SubscriptionFactory, UserFactory

UTC = datetime.UTC


def at(moment):
    return time_machine.travel(moment, tick=False)


def readonly_value(response, label):
    """The value the admin's change form shows, read-only, beside `label`."""
    page = response.content.decode()
    found = re.search(
        rf"<label>{re.escape(label)}:</label>\s*<div class=\"readonly\">([^<]*)</div>", page
    )
    assert found, f"no read-only {label!r} on the page"
    return found.group(1).strip()


# -- Review due -----------------------------------------------------------------------------


@override_settings(TIME_ZONE="America/New_York")
def test_the_admin_and_the_staff_digest_agree_on_when_a_review_is_due(client, uscis):
    """Added at 22:00 in New York on 31 December, already 1 January in UTC: the review is due
    90 local days later, on 30 March, wherever staff look, and overdue from 31 March (local)."""
    with at(datetime.datetime(2024, 1, 1, 3, tzinfo=UTC)):
        recommendation = RecommendationFactory(code="WRC-1", review_interval_days=90, lead=uscis)
        staff = UserFactory(username="staffer", is_staff=True, is_superuser=True)
        subscription = SubscriptionFactory(email="staff@example.org", user=staff)
    client.force_login(staff)
    preview_url = reverse("admin:tracker_subscription_preview", args=[subscription.pk])

    with at(datetime.datetime(2024, 3, 31, 2, tzinfo=UTC)):  # 30 March, 22:00 in New York
        assert "Review overdue: WRC-1" not in client.get(preview_url).content.decode()
    with at(datetime.datetime(2024, 4, 2, 15, tzinfo=UTC)):
        change_page = client.get(
            reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
        )
        preview = client.get(preview_url)

    assert change_page.status_code == 200 and preview.status_code == 200
    assert readonly_value(change_page, "Next review due") == "2024-03-30"
    assert "Review overdue: WRC-1 (due 30 March 2024)" in preview.content.decode()

