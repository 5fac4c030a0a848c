"""The audit trail: who created, changed or deleted recommendations, owners, status changes,
evidence and sources, and what changed, from the admin and the API; visible in the admin."""

import datetime
import re

import pytest
from auditlog.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from tests.factories import EvidenceFactory, RecommendationFactory
from tests.support.pages import local_url
from tests.support.staff import api_as, change_form_data, source_form_data
from tracker.models import Evidence, Ownership, Recommendation, Source, StatusChange
from tracker.monitoring import check_source

pytestmark = pytest.mark.django_db
Action = LogEntry.Action


def entries_for(obj, action=None):
    entries = LogEntry.objects.get_for_object(obj).select_related("actor")
    return list(entries if action is None else entries.filter(action=action))


@pytest.fixture
def recommendation(uscis):
    return RecommendationFactory(code="WRC-2024-2.1", title="Expand CHNV parole", lead=uscis)


def test_creating_evidence_in_the_admin_is_logged_with_its_author(client, editor, recommendation):
    client.force_login(editor)
    response = client.post(
        reverse("admin:tracker_evidence_add"),
        {
            "title_en": "USCIS announces final dates",
            "url": "https://www.uscis.gov/chnv",
            "kind": Evidence.Kind.OFFICIAL_ANNOUNCEMENT,
            "effect": Evidence.Effect.ADVANCES,
            "recommendations": [recommendation.pk],
        },
    )
    assert response.status_code == 302
    evidence = Evidence.objects.get()
    (created,) = entries_for(evidence, Action.CREATE)
    assert created.actor == editor
    assert created.changes_dict["title_en"] == ["None", "USCIS announces final dates"]
    (linked,) = entries_for(evidence, Action.UPDATE)
    assert linked.actor == editor
    assert linked.changes_dict["recommendations"]["objects"] == [str(recommendation)]


def test_changing_a_recommendation_in_the_admin_logs_who_and_what(
    client, admin_user, recommendation
):
    client.force_login(admin_user)
    lead = recommendation.ownerships.get()
    data = change_form_data(recommendation, [(lead.pk, lead.agency, Ownership.Role.LEAD)])
    data["title_en"] = "Expand and extend CHNV parole"
    url = reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
    assert client.post(url, data).status_code == 302
    (changed,) = entries_for(recommendation, Action.UPDATE)
    assert changed.actor == admin_user
    assert changed.changes_dict == {
        "title_en": ["Expand CHNV parole", "Expand and extend CHNV parole"]
    }
    assert changed.timestamp <= timezone.now()


def test_a_change_of_owner_is_logged(client, admin_user, recommendation, congress):
    client.force_login(admin_user)
    lead = recommendation.ownerships.get()
    data = change_form_data(recommendation, [(lead.pk, congress, Ownership.Role.LEAD)])
    url = reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
    assert client.post(url, data).status_code == 302
    (changed,) = entries_for(lead, Action.UPDATE)
    assert changed.actor == admin_user
    assert changed.changes_dict["agency"] == [str(lead.agency_id), str(congress.pk)]


def test_deleting_evidence_in_the_admin_is_logged(client, admin_user):
    evidence = EvidenceFactory(title="A retracted report")
    client.force_login(admin_user)
    url = reverse("admin:tracker_evidence_delete", args=[evidence.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    deleted = LogEntry.objects.get(action=Action.DELETE)
    assert (deleted.actor, deleted.object_repr) == (admin_user, str(evidence))
    assert deleted.content_type.model == "evidence"


def test_recording_a_status_change_in_the_admin_is_logged(client, editor, recommendation):
    client.force_login(editor)
    url = reverse("admin:tracker_recommendation_record_status", args=[recommendation.pk])
    response = client.post(
        url, {"status": "implemented", "effective_on": "2024-09-01", "rationale": "Final rule."}
    )
    assert response.status_code == 302
    change = StatusChange.objects.get()
    (created,) = entries_for(change, Action.CREATE)
    assert created.actor == editor
    assert created.changes_dict["status"][1] == "implemented"
    status_entries = [
        entry
        for entry in entries_for(recommendation, Action.UPDATE)
        if "status" in entry.changes_dict
    ]
    assert [entry.actor for entry in status_entries] == [editor]
    assert status_entries[0].changes_dict["status"] == ["not_assessed", "implemented"]


def test_an_api_write_records_the_token_user_as_actor(editor, recommendation):
    response = api_as(editor).post(
        reverse("api:recommendation-record-status", args=[recommendation.pk]),
        {"status": "partial", "effective_on": "2024-09-01", "rationale": "Half done."},
        format="json",
    )
    assert response.status_code == 201
    (created,) = entries_for(StatusChange.objects.get(), Action.CREATE)
    assert created.actor == editor
    assert created.changes_dict["rationale_en"] == ["None", "Half done."]


def test_changes_made_outside_a_request_have_no_actor(recommendation):
    recommendation.record_status(
        "in_progress", effective_on=datetime.date(2024, 9, 1), rationale="Imported."
    )
    (created,) = entries_for(StatusChange.objects.get(), Action.CREATE)
    assert created.actor is None


def test_routine_source_checks_leave_no_audit_entries(allow_local):
    allow_local.expect_request("/page").respond_with_data(
        "<html><body><article><p>The dates are unchanged for now.</p></article></body></html>",
        content_type="text/html",
    )
    source = Source.objects.create(url=local_url(allow_local, "/page"), title="USCIS")
    before = LogEntry.objects.count()
    check_source(source)
    source.refresh_from_db()
    check_source(source)
    source.refresh_from_db()
    assert source.last_checked_at is not None and source.content_hash
    # Code that saves the monitoring state whole is not logged either.
    source.next_check_at = timezone.now() + datetime.timedelta(hours=1)
    source.consecutive_failures = 2
    source.save()
    assert LogEntry.objects.count() == before


def test_a_staff_edit_of_a_source_url_is_logged(client, admin_user):
    source = Source.objects.create(url="https://www.uscis.gov/chnv", title="USCIS")
    client.force_login(admin_user)
    url = reverse("admin:tracker_source_change", args=[source.pk])
    data = source_form_data(source, url="https://www.uscis.gov/chnv-updates")
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    (changed,) = entries_for(source, Action.UPDATE)
    assert changed.actor == admin_user
    assert changed.changes_dict == {
        "url": ["https://www.uscis.gov/chnv", "https://www.uscis.gov/chnv-updates"]
    }


def test_the_admin_shows_a_recommendations_audit_log(client, editor, viewer, recommendation):
    client.force_login(editor)
    client.post(
        reverse("admin:tracker_recommendation_record_status", args=[recommendation.pk]),
        {"status": "implemented", "effective_on": "2024-09-01", "rationale": "Final rule."},
    )
    client.force_login(viewer)
    page = client.get(reverse("admin:tracker_recommendation_change", args=[recommendation.pk]))
    audit = reverse("admin:tracker_recommendation_auditlog", args=[recommendation.pk])
    assert audit in page.content.decode()
    history = client.get(audit).content.decode()
    assert "editor" in history and "implemented" in history
    listing = client.get(reverse("admin:auditlog_logentry_changelist")).content.decode()
    assert "editor" in listing


def test_the_audit_log_list_stays_cheap(client, admin_user, django_assert_max_num_queries):
    for number in range(30):
        EvidenceFactory(title=f"Report {number}")
    client.force_login(admin_user)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("admin:auditlog_logentry_changelist"))
    assert response.status_code == 200
    assert Recommendation.objects.count() == 0


def test_publishing_from_the_admin_list_logs_each_change_in_a_few_queries(
    client, admin_user, django_assert_max_num_queries
):
    drafts = [RecommendationFactory(is_published=False) for _ in range(20)]
    already = RecommendationFactory(is_published=True)
    client.force_login(admin_user)
    changelist = reverse("admin:tracker_recommendation_changelist")
    selected = [r.pk for r in [*drafts, already]]
    # However many rows: the list's filters, one UPDATE, the audit entries in one INSERT, and
    # the progress ledger told which documents changed.
    with django_assert_max_num_queries(17):
        client.post(changelist, {"action": "publish", "_selected_action": selected})
    entries = LogEntry.objects.filter(action=Action.UPDATE).select_related("actor")
    assert {int(entry.object_pk) for entry in entries} == {r.pk for r in drafts}
    assert {entry.actor for entry in entries} == {admin_user}
    assert {str(entry.changes_dict) for entry in entries} == {
        str({"is_published": ["False", "True"]})
    }
    assert Recommendation.objects.filter(is_published=False).count() == 0
    page = client.get(reverse("admin:tracker_recommendation_auditlog", args=[drafts[0].pk]))
    text = " ".join(re.sub(r"<[^>]+>", " ", page.content.decode()).split())
    assert "admin update # Field From To 1 Published False True" in text


# -- The client's address ------------------------------------------------------------------


def test_a_forged_forwarded_address_is_not_what_the_audit_trail_records(editor, recommendation):
    response = api_as(editor).post(
        reverse("api:recommendation-record-status", args=[recommendation.pk]),
        {"status": "partial", "effective_on": "2024-09-01", "rationale": "Half done."},
        format="json",
        HTTP_X_FORWARDED_FOR="203.0.113.66",
        HTTP_X_FORWARDED_PORT="4444",
        REMOTE_ADDR="192.0.2.10",
    )
    assert response.status_code == 201
    (created,) = entries_for(StatusChange.objects.get(), Action.CREATE)
    assert (created.remote_addr, created.remote_port) == ("192.0.2.10", None)


def test_behind_a_trusted_proxy_the_audit_trail_records_the_forwarded_client(
    client, admin_user, settings
):
    settings.TRACKER_TRUSTED_PROXIES = 1
    drafts = [RecommendationFactory(is_published=False) for _ in range(2)]
    client.force_login(admin_user)
    client.post(
        reverse("admin:tracker_recommendation_changelist"),
        {"action": "publish", "_selected_action": [r.pk for r in drafts]},
        HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.5",
    )
    # A bulk action writes its entries itself, with the same address as any other entry.
    entries = LogEntry.objects.filter(action=Action.UPDATE)
    assert [entry.remote_addr for entry in entries] == ["203.0.113.5"] * 2
