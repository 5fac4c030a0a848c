"""The staff's start page (what needs attention), the admin's sections by role, and the rough
edges staff met in the workspace."""

import datetime

import pytest
from django.urls import reverse
from django.utils import formats, timezone, translation

from tests.factories import AgencyFactory, EvidenceFactory, RecommendationFactory, UserFactory
from tracker import workspace
from tracker.models import (
    ChangeAlert,
    DigestDelivery,
    FeedEntry,
    ImportProposal,
    Recommendation,
    Source,
    SourceVersion,
    StatusChange,
    Subscription,
)

Status = Recommendation.Status
pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 12, 5)
DIFF = "--- before\n+++ after\n@@ -1,2 +1,2 @@\n The program\n-is paused\n+reopens for parents\n"


def alert_on(source, diff=DIFF):
    version = SourceVersion.objects.create(
        source=source,
        content_hash=f"{source.pk:064d}",
        text="text",
        url=source.url,
        http_status=200,
        fetched_at=timezone.now(),
    )
    return ChangeAlert.objects.create(source=source, version=version, diff=diff)


def overdue(recommendation, *, days_late=1):
    recommendation.review_interval_days = 30
    recommendation.last_reviewed_on = TODAY - datetime.timedelta(days=30 + days_late)
    recommendation.save()
    return recommendation


@pytest.fixture
def waiting(uscis, congress):
    """Something in every part of the start page."""
    watched = Source.objects.create(url="https://www.uscis.gov/news", title="USCIS news")
    alert_on(watched)
    Source.objects.create(url="https://example.org/gone", title="Gone page", consecutive_failures=4)
    FeedEntry.objects.create(source=watched, guid="1", link="https://x.test/1", title="CAM back")
    ImportProposal.objects.create(code="ST-2025", format="markdown", stored_fingerprint="0" * 64)
    subscription = Subscription.objects.create(email="reader@example.org")
    DigestDelivery.objects.create(
        subscription=subscription,
        period="2026-W48",
        period_start=datetime.date(2026, 11, 23),
        period_end=datetime.date(2026, 11, 29),
        state=DigestDelivery.State.FAILED,
        error="SMTP refused",
    )
    overdue(RecommendationFactory(code="A-1", lead=uscis))
    overdue(RecommendationFactory(code="A-2", lead=uscis))
    overdue(RecommendationFactory(code="B-1", lead=congress))
    overdue(RecommendationFactory(code="C-1"))
    RecommendationFactory(code="D-1", lead=uscis).record_status(
        Status.IN_PROGRESS, effective_on=TODAY, rationale="Announced."
    )


def attention_for(user):
    return workspace.needs_attention(user, today=TODAY)


# --- when a review is overdue: one rule, in Python and in SQL ---------------------------------


def test_the_overdue_query_agrees_with_the_rule_on_each_recommendation(uscis):
    cases = [
        dict(last_reviewed_on=TODAY - datetime.timedelta(days=31), review_interval_days=30),
        dict(last_reviewed_on=TODAY - datetime.timedelta(days=30), review_interval_days=30),
        dict(last_reviewed_on=TODAY - datetime.timedelta(days=91), review_interval_days=90),
        dict(last_reviewed_on=None, review_interval_days=7),
        dict(last_reviewed_on=TODAY, review_interval_days=1),
    ]
    for fields in cases:
        RecommendationFactory(**fields)
    late = RecommendationFactory(review_interval_days=10)
    Recommendation.objects.filter(pk=late.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=40)
    )
    changed = RecommendationFactory(review_interval_days=10)
    Recommendation.objects.filter(pk=changed.pk).update(
        status_changed_on=TODAY - datetime.timedelta(days=11)
    )
    by_rule = {r.pk for r in Recommendation.objects.all() if r.is_review_overdue(today=TODAY)}
    by_query = set(Recommendation.objects.review_overdue(today=TODAY).values_list("pk", flat=True))
    assert by_query == by_rule
    assert len(by_rule) == 4


# --- the start page -----------------------------------------------------------------------


def test_an_administrator_sees_everything_that_waits(admin_user, waiting, uscis, congress):
    attention = attention_for(admin_user)
    assert attention.alerts.total == 1
    assert attention.alerts.rows[0].preview == ["-is paused", "+reopens for parents"]
    assert [e.title for e in attention.feed_entries.rows] == ["CAM back"]
    assert [p.code for p in attention.proposals.rows] == ["ST-2025"]
    assert [s.title for s in attention.broken_sources.rows] == ["Gone page"]
    assert attention.failed_digests.total == 1
    assert [(g.agency, g.count) for g in attention.overdue] == [
        (congress, 1),
        (uscis, 2),
        (None, 1),
    ]
    assert [c.recommendation.code for c in attention.latest_changes] == ["D-1"]
    assert not attention.is_quiet


def test_an_editor_sees_only_what_their_role_may_see(editor, waiting):
    attention = attention_for(editor)
    assert attention.alerts.total == 1
    assert attention.feed_entries.total == 1
    assert attention.overdue
    # Imports, digests and (to act on) sources are an administrator's.
    assert attention.proposals is None
    assert attention.failed_digests is None


def test_the_start_page_costs_the_same_however_much_waits(
    admin_user, waiting, uscis, django_assert_max_num_queries
):
    with django_assert_max_num_queries(16):
        workspace.needs_attention(admin_user, today=TODAY)
    for n in range(30):
        source = Source.objects.create(url=f"https://example.org/{n}", consecutive_failures=5)
        alert_on(source)
        overdue(RecommendationFactory(lead=AgencyFactory()))
    with django_assert_max_num_queries(16):
        attention = workspace.needs_attention(admin_user, today=TODAY)
    assert attention.alerts.total == 31
    assert len(attention.alerts.rows) == workspace.SHOWN


def test_the_start_page_links_each_waiting_thing_to_where_to_act(client, admin_user, waiting):
    client.force_login(admin_user)
    page = client.get(reverse("admin:index")).content.decode()
    alert = ChangeAlert.objects.get()
    for url in [
        reverse("admin:tracker_changealert_change", args=[alert.pk]),
        reverse("admin:tracker_changealert_changelist") + "?reviewed=no",
        reverse("admin:tracker_feedentry_changelist") + "?state__exact=new",
        reverse("admin:tracker_importproposal_change", args=[ImportProposal.objects.get().pk]),
        reverse("admin:tracker_source_changelist") + "?health=broken",
        reverse("admin:tracker_digestdelivery_changelist") + "?state__exact=failed",
        reverse("admin:tracker_recommendation_changelist") + "?review=overdue&amp;lead=none",
    ]:
        assert f'href="{url}"' in page, url
    assert '<ins class="diff-add">+reopens for parents</ins>' in page
    assert "2 unreviewed" not in page and "1 unreviewed change alert" in page


def test_each_part_opens_the_list_of_what_waits(client, admin_user, waiting):
    client.force_login(admin_user)
    lists = {
        "tracker_changealert_changelist": ("reviewed=no", 1),
        "tracker_feedentry_changelist": ("state__exact=new", 1),
        "tracker_importproposal_changelist": ("state__exact=pending", 1),
        "tracker_source_changelist": ("health=broken", 1),
        "tracker_digestdelivery_changelist": ("state__exact=failed", 1),
    }
    for name, (query, count) in lists.items():
        response = client.get(f"{reverse(f'admin:{name}')}?{query}")
        assert response.status_code == 200, name  # an unknown filter redirects with ?e=1
        assert response.context["cl"].result_count == count, name


def test_the_overdue_link_lists_the_agencys_overdue_recommendations(client, admin_user, waiting):
    client.force_login(admin_user)
    uscis = Recommendation.objects.get(code="A-1").ownerships.get().agency
    url = reverse("admin:tracker_recommendation_changelist")
    with time_of(TODAY):
        response = client.get(url, {"review": "overdue", "lead": uscis.pk})
    codes = {r.code for r in response.context["cl"].result_list}
    assert codes == {"A-1", "A-2"}


def test_a_quiet_day_says_nothing_waits(client, editor):
    client.force_login(editor)
    page = client.get(reverse("admin:index")).content.decode()
    assert "Nothing waits for you" in page


# --- sections by role ---------------------------------------------------------------------


def section_names(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    own = [app["app_label"] for app in response.context["app_list"]]
    administration = [app["app_label"] for app in response.context["administration"]]
    return own, administration, response.content.decode()


def test_an_administrator_finds_tracker_first_and_the_administration_after(client, admin_user):
    own, administration, page = section_names(client, admin_user)
    assert own == ["tracker", "auditlog"]
    assert set(administration) == {"auth", "authtoken", "axes", "django_celery_beat"}
    assert page.index("Change alerts") < page.index("Administration (administrators only)")
    assert page.index("Administration (administrators only)") < page.index("Crontabs")


def test_an_editor_sees_no_administration_section(client, editor):
    own, administration, page = section_names(client, editor)
    assert own[0] == "tracker"
    assert administration == []
    assert "Administration (administrators only)" not in page
    assert "Crontabs" not in page


def test_an_app_page_still_lists_that_app_alone(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("admin:app_list", args=["django_celery_beat"]))
    assert [app["app_label"] for app in response.context["app_list"]] == ["django_celery_beat"]


# --- rough edges --------------------------------------------------------------------------


def test_the_alert_list_shows_a_snippet_of_each_diff(client, admin_user):
    alert_on(Source.objects.create(url="https://www.uscis.gov/news", title="USCIS news"))
    client.force_login(admin_user)
    page = client.get(reverse("admin:tracker_changealert_changelist")).content.decode()
    assert '<del class="diff-del">-is paused</del>' in page


def test_the_alert_page_heading_reads_change_alert(client, admin_user):
    alert = alert_on(Source.objects.create(url="https://www.uscis.gov/news", title="USCIS news"))
    client.force_login(admin_user)
    page = client.get(reverse("admin:tracker_changealert_change", args=[alert.pk]))
    assert "<h1>Change alert</h1>" in page.content.decode()
    assert "Change change alert" not in page.content.decode()


def test_linked_evidence_rows_read_as_the_evidence(client, admin_user):
    recommendation = RecommendationFactory()
    EvidenceFactory(title="USCIS reopens CAM").recommendations.add(recommendation)
    client.force_login(admin_user)
    url = reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
    page = client.get(url).content.decode()
    assert "USCIS reopens CAM" in page
    assert "_recommendations object" not in page


def test_history_without_an_account_says_so(client, admin_user):
    recommendation = RecommendationFactory()
    evidence = EvidenceFactory(title="The program stopped")
    recommendation.record_status(Status.STALLED, effective_on=TODAY, evidence=[evidence])
    client.force_login(admin_user)
    change_page = reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
    change = StatusChange.objects.get()
    for url in [
        change_page,
        reverse("admin:tracker_statuschange_changelist"),
        reverse("admin:tracker_statuschange_change", args=[change.pk]),
    ]:
        assert "no account (a command or import)" in client.get(url).content.decode(), url
    page = client.get(reverse("admin:tracker_statuschange_change", args=[change.pk]))
    assert "The program stopped" in page.content.decode()


def test_the_status_form_shows_every_problem_at_once(client, admin_user):
    recommendation = RecommendationFactory()
    client.force_login(admin_user)
    url = reverse("admin:tracker_recommendation_record_status", args=[recommendation.pk])
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    response = client.post(url, {"status": Status.IMPLEMENTED, "effective_on": tomorrow})
    form = response.context["form"]
    assert form.errors == {
        "effective_on": ["A status change cannot take effect in the future."],
        "rationale": ["A status change needs evidence or a rationale."],
    }
    assert not StatusChange.objects.exists()
    # Each label stands above its field, the evidence picker's too.
    assert 'class="module stacked-fields"' in response.content.decode()


def test_english_times_never_end_in_a_full_stop():
    moment = datetime.datetime(2026, 12, 5, 0, 34, tzinfo=datetime.UTC)
    with translation.override("en"):
        shown = formats.date_format(moment, "DATETIME_FORMAT")
    assert shown == "Dec. 5, 2026, 00:34"


def time_of(day):
    import time_machine

    return time_machine.travel(datetime.datetime.combine(day, datetime.time(12)), tick=False)


def test_staff_without_roles_meet_an_empty_start_page(client):
    nobody = UserFactory(username="nobody", is_staff=True)
    client.force_login(nobody)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert response.context["attention"].alerts is None


def test_the_start_page_speaks_spanish_to_spanish_staff(client, editor, waiting):
    client.force_login(editor)
    page = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Requiere atención" in page
    assert "1 alerta de cambio sin revisar" in page
    assert "Revisiones vencidas, por agencia responsable" in page
