"""Triage: what staff do with change alerts and feed entries (accept as evidence, mark
reviewed, dismiss), the same in the admin and the API."""

import datetime
import hashlib
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import RecommendationFactory, UserFactory
from tests.support.staff import role
from tracker.models import ChangeAlert, Evidence, FeedEntry, Recommendation, Source, SourceVersion
from tracker.monitoring import diff_versions

pytestmark = pytest.mark.django_db

ARTICLE = "USCIS announced that the final dates for the CHNV parole processes are {state}."


@pytest.fixture
def source():
    watched = Source.objects.create(url="https://www.uscis.gov/chnv", title="USCIS news")
    watched.recommendations.add(RecommendationFactory(code="WRC-2024-1.4"))
    return watched


def raise_alert(source, state, *, previous_state="unchanged"):
    """A change seen on `source`, as a check records it: two versions and their diff."""
    previous, current = (ARTICLE.format(state=s) for s in (previous_state, state))
    versions = [
        SourceVersion.objects.get_or_create(
            source=source,
            content_hash=hashlib.sha256(text.encode()).hexdigest(),
            defaults={
                "title": "CHNV parole update",
                "text": text,
                "url": source.url,
                "http_status": 200,
                "fetched_at": timezone.now(),
            },
        )[0]
        for text in (previous, current)
    ]
    return ChangeAlert.objects.create(
        source=source,
        previous_version=versions[0],
        version=versions[1],
        diff=diff_versions(previous, current),
    )


@pytest.fixture
def alert(source):
    return raise_alert(source, "updated to 1 August 2024")


@pytest.fixture
def colleague(db):
    """A second editor, triaging the same inbox."""
    user = UserFactory(username="colleague", is_staff=True)
    user.groups.add(role("Editor"))
    return user


def api_as(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def review_in_admin(user, *alerts):
    """Mark `alerts` reviewed with the admin's bulk action; return the messages shown."""
    client = Client()
    client.force_login(user)
    response = client.post(
        reverse("admin:tracker_changealert_changelist"),
        {"action": "mark_reviewed", "_selected_action": [alert.pk for alert in alerts]},
    )
    return [str(message) for message in get_messages(response.wsgi_request)]


def review_in_api(user, alert):
    return api_as(user).post(reverse("api:changealert-review", args=[alert.pk]))


def test_staff_turn_an_alert_into_evidence_and_a_status_change(client, editor, source, alert):
    recommendation = source.recommendations.get()
    client.force_login(editor)
    url = reverse("admin:tracker_changealert_accept", args=[alert.pk])
    form = client.get(url)
    assert form.status_code == 200
    assert "updated to 1 August 2024" in form.content.decode()
    response = client.post(
        url,
        {
            "title": "USCIS updates CHNV dates",
            "url": "https://www.uscis.gov/chnv",
            "outlet": "USCIS",
            "published_on": "2024-08-01",
            "kind": Evidence.Kind.OFFICIAL_ANNOUNCEMENT,
            "effect": Evidence.Effect.ADVANCES,
            "excerpt": "final dates updated",
            "recommendations": [recommendation.pk],
            "status": Recommendation.Status.IMPLEMENTED,
            "rationale": "",
        },
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    recommendation.refresh_from_db()
    assert alert.is_reviewed and alert.reviewed_by == editor
    assert alert.evidence.title == "USCIS updates CHNV dates"
    assert recommendation.status == Recommendation.Status.IMPLEMENTED
    assert recommendation.status_changed_on == datetime.date(2024, 8, 1)
    assert list(recommendation.evidence.all()) == [alert.evidence]


def test_the_inbox_lists_unreviewed_alerts_first(client, admin_user, source):
    older = raise_alert(source, "first change")
    newer = raise_alert(source, "second change", previous_state="first change")
    review_in_api(admin_user, older)
    assert list(ChangeAlert.objects.inbox_order()) == [newer, older]
    client.force_login(admin_user)
    content = client.get(reverse("admin:tracker_changealert_changelist")).content.decode()
    assert content.index(f"/changealert/{newer.pk}/") < content.index(f"/changealert/{older.pk}/")
    assert "WRC-2024-1.4" in content
    detail = client.get(reverse("admin:tracker_changealert_change", args=[newer.pk]))
    assert '<ins class="diff-add">' in detail.content.decode()


def test_staff_accept_or_dismiss_feed_entries(client, editor, admin_user):
    source = Source.objects.create(url="https://www.dhs.gov/rss", kind=Source.Kind.FEED)
    recommendation = RecommendationFactory(code="WRC-2024-1.6")
    keep = FeedEntry.objects.create(
        source=source,
        guid="cam",
        link="https://www.dhs.gov/news/cam",
        title="CAM expanded",
        suggestions=[{"id": recommendation.pk, "score": 0.4}],
    )
    drop = FeedEntry.objects.create(source=source, guid="other", title="Unrelated")
    client.force_login(admin_user)
    listing = client.get(reverse("admin:tracker_feedentry_changelist")).content.decode()
    assert "WRC-2024-1.6" in listing
    client.post(
        reverse("admin:tracker_feedentry_changelist"),
        {"action": "dismiss", "_selected_action": [drop.pk]},
    )
    client.force_login(editor)
    response = client.post(
        reverse("admin:tracker_feedentry_accept", args=[keep.pk]),
        {"recommendations": [recommendation.pk], "kind": "news_report", "effect": "advances"},
    )
    assert response.status_code == 302
    keep.refresh_from_db()
    drop.refresh_from_db()
    assert drop.state == FeedEntry.State.DISMISSED
    assert keep.state == FeedEntry.State.ACCEPTED
    assert list(keep.evidence.recommendations.all()) == [recommendation]
    assert keep.evidence.url == "https://www.dhs.gov/news/cam"


def test_an_alert_sent_twice_is_accepted_once(client, editor, source, alert):
    client.force_login(editor)
    url = reverse("admin:tracker_changealert_accept", args=[alert.pk])
    form = {
        "title": "USCIS updates CHNV dates",
        "url": "https://www.uscis.gov/chnv",
        "published_on": "2024-08-01",
        "kind": Evidence.Kind.OFFICIAL_ANNOUNCEMENT,
        "effect": Evidence.Effect.ADVANCES,
        "recommendations": [source.recommendations.get().pk],
        "status": Recommendation.Status.IMPLEMENTED,
    }
    assert client.post(url, form).status_code == 302
    again = client.post(url, form)
    assert "already been reviewed" in again.content.decode()
    assert Evidence.objects.count() == 1
    assert source.recommendations.get().status_changes.count() == 1


def test_viewers_cannot_accept_alerts_or_feed_entries(client, viewer, source, alert):
    entry = FeedEntry.objects.create(source=source, guid="g", link="https://x.example.org/")
    client.force_login(viewer)
    for name, pk in [("changealert", alert.pk), ("feedentry", entry.pk)]:
        url = reverse(f"admin:tracker_{name}_accept", args=[pk])
        assert client.get(url).status_code == 403
        assert client.post(url, {"recommendations": []}).status_code == 403
    assert not Evidence.objects.exists()
    assert not ChangeAlert.objects.get().is_reviewed


ALREADY_REVIEWED = "This alert has already been reviewed."


def test_the_second_of_two_reviewers_is_told_the_same_in_the_admin_and_the_api(
    editor, colleague, source
):
    # The editor reviews in the API; the colleague, a moment later, in the admin.
    first = raise_alert(source, "first change")
    assert review_in_api(editor, first).status_code == 200
    assert review_in_admin(colleague, first) == [ALREADY_REVIEWED]
    # The other way round: the admin first, the API second.
    second = raise_alert(source, "second change", previous_state="first change")
    assert review_in_admin(editor, second) == ["1 alert(s) marked reviewed."]
    refused = review_in_api(colleague, second)
    assert (refused.status_code, refused.json()) == (409, {"detail": ALREADY_REVIEWED})
    # Only the first reviewer of each is recorded.
    assert [alert.reviewed_by for alert in ChangeAlert.objects.order_by("pk")] == [editor, editor]


def test_reviewing_an_alert_someone_accepted_meanwhile_is_refused_alike(
    client, editor, colleague, source, alert
):
    client.force_login(editor)
    accepted = client.post(
        reverse("admin:tracker_changealert_accept", args=[alert.pk]),
        {
            "title": "USCIS updates CHNV dates",
            "url": "https://www.uscis.gov/chnv",
            "published_on": "2024-08-01",
            "kind": Evidence.Kind.OFFICIAL_ANNOUNCEMENT,
            "effect": Evidence.Effect.ADVANCES,
            "recommendations": [source.recommendations.get().pk],
        },
    )
    assert accepted.status_code == 302
    refused = review_in_api(colleague, alert)
    assert (refused.status_code, refused.json()) == (409, {"detail": ALREADY_REVIEWED})
    assert review_in_admin(colleague, alert) == [ALREADY_REVIEWED]
    alert.refresh_from_db()
    assert alert.reviewed_by == editor and alert.evidence is not None


def test_reviewing_several_alerts_says_how_many_someone_else_had_reviewed(
    editor, colleague, source
):
    alerts = [
        raise_alert(source, f"change {number}", previous_state=f"change {number - 1}")
        for number in range(3)
    ]
    assert review_in_api(editor, alerts[0]).status_code == 200
    assert review_in_admin(colleague, *alerts) == [
        "2 alert(s) marked reviewed.",
        "1 of the 3 chosen alerts had already been reviewed.",
    ]
    assert [alert.reviewed_by for alert in ChangeAlert.objects.order_by("pk")] == [
        editor,
        colleague,
        colleague,
    ]


def test_dismissing_an_entry_someone_accepted_meanwhile_says_so(client, editor, colleague):
    source = Source.objects.create(url="https://www.dhs.gov/rss", kind=Source.Kind.FEED)
    entry = FeedEntry.objects.create(source=source, guid="cam", link="https://www.dhs.gov/cam")
    client.force_login(editor)
    client.post(
        reverse("admin:tracker_feedentry_accept", args=[entry.pk]),
        {
            "recommendations": [RecommendationFactory().pk],
            "kind": "news_report",
            "effect": "context",
        },
    )
    colleagues_browser = Client()
    colleagues_browser.force_login(colleague)
    response = colleagues_browser.post(
        reverse("admin:tracker_feedentry_changelist"),
        {"action": "dismiss", "_selected_action": [entry.pk]},
    )
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == ["This entry has already been accepted or dismissed."]
    entry.refresh_from_db()
    assert entry.state == FeedEntry.State.ACCEPTED


def test_only_triage_claims_alerts_and_entries():
    """The claims are written once: every review, acceptance and dismissal calls triage's."""
    tracker = Path(__file__).resolve().parent.parent / "tracker"
    claimants = sorted(
        str(path.relative_to(tracker))
        for path in tracker.rglob("*.py")
        if "migrations" not in path.parts
        and any(
            claim in path.read_text()
            for claim in ("reviewed_by=", "State.DISMISSED", "State.ACCEPTED")
        )
    )
    assert claimants == ["triage.py"]
