"""Two staff roles, Editor and Viewer, made by a data migration and enforced the same way in
the admin and the API."""

import datetime
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tests.factories import EvidenceFactory, RecommendationFactory, UserFactory
from tests.support.staff import api_as, change_form_data, role, roles_migration
from tracker.models import ChangeAlert, Evidence, Recommendation, Source, SourceVersion

pytestmark = pytest.mark.django_db
Status = Recommendation.Status


@pytest.fixture
def recommendation(uscis):
    recommendation = RecommendationFactory(code="WRC-2024-2.1", lead=uscis)
    recommendation.record_status(
        Status.IN_PROGRESS,
        effective_on=datetime.date(2024, 8, 1),
        evidence=[EvidenceFactory(title="USCIS announces new dates")],
    )
    return recommendation


@pytest.fixture
def alert(recommendation):
    source = Source.objects.create(url="https://www.uscis.gov/chnv", title="USCIS news")
    source.recommendations.add(recommendation)
    version = SourceVersion.objects.create(
        source=source,
        content_hash="a" * 64,
        text="Dates updated.",
        url=source.url,
        http_status=200,
        fetched_at=timezone.now(),
    )
    return ChangeAlert.objects.create(source=source, version=version, diff="+Dates updated.")


def perms_of(name):
    group = Group.objects.get(name=name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


# --- the groups -----------------------------------------------------------------------------


def test_the_migration_makes_an_editor_and_a_viewer_group():
    editor, viewer = perms_of("Editor"), perms_of("Viewer")
    assert {"tracker.add_statuschange", "tracker.add_evidence", "tracker.change_changealert"} <= (
        editor
    )
    assert "auditlog.view_logentry" in viewer
    assert all(codename.split(".")[1].startswith("view_") for codename in viewer)
    assert viewer < editor
    assert not any(".delete_" in perm for perm in editor)
    assert not any(perm.startswith("auth.") for perm in editor)


def test_running_the_roles_migration_again_changes_nothing():
    before = {name: perms_of(name) for name in ["Editor", "Viewer"]}
    roles_migration().create_roles(global_apps, SimpleNamespace(connection=connection))
    assert {name: perms_of(name) for name in ["Editor", "Viewer"]} == before
    assert Group.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_roles_migration_can_be_reversed_and_applied_again():
    role("Editor")  # an earlier transactional test may have flushed the groups
    call_command("migrate", "tracker", "0004_subscriptions", verbosity=0)
    assert not Group.objects.filter(name__in=["Editor", "Viewer"]).exists()
    call_command("migrate", verbosity=0)
    assert set(Group.objects.values_list("name", flat=True)) == {"Editor", "Viewer"}
    assert "tracker.add_statuschange" in perms_of("Editor")


# --- the Editor -----------------------------------------------------------------------------


def test_an_editor_records_status_adds_evidence_and_reviews_alerts_in_the_admin(
    client, editor, recommendation, alert
):
    client.force_login(editor)
    record = reverse("admin:tracker_recommendation_record_status", args=[recommendation.pk])
    response = client.post(
        record, {"status": Status.IMPLEMENTED, "effective_on": "2024-09-01", "rationale": "Done."}
    )
    assert response.status_code == 302
    assert recommendation.status_changes.latest_first().first().recorded_by == editor

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
    assert Evidence.objects.get(title="USCIS announces final dates")

    client.post(
        reverse("admin:tracker_changealert_changelist"),
        {"action": "mark_reviewed", "_selected_action": [alert.pk]},
    )
    alert.refresh_from_db()
    assert alert.reviewed_by == editor


def test_an_editor_records_status_adds_evidence_and_reviews_alerts_in_the_api(
    editor, recommendation, alert
):
    api = api_as(editor)
    response = api.post(
        reverse("api:recommendation-record-status", args=[recommendation.pk]),
        {"status": "implemented", "effective_on": "2024-09-01", "rationale": "Done."},
        format="json",
    )
    assert response.status_code == 201, response.json()
    response = api.post(
        reverse("api:evidence-list"),
        {
            "title": "USCIS announces final dates",
            "url": "https://www.uscis.gov/chnv",
            "kind": "official_announcement",
            "effect": "advances",
            "recommendations": [recommendation.pk],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    response = api.post(reverse("api:changealert-review", args=[alert.pk]))
    assert response.status_code == 200
    assert response.json()["reviewed_at"]
    alert.refresh_from_db()
    assert alert.reviewed_by == editor
    again = api.post(reverse("api:changealert-review", args=[alert.pk]))
    assert again.status_code == 409


def test_an_editor_cannot_delete_recommendations_in_the_admin_or_the_api(
    client, editor, recommendation
):
    client.force_login(editor)
    delete = reverse("admin:tracker_recommendation_delete", args=[recommendation.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    response = api_as(editor).delete(reverse("api:recommendation-detail", args=[recommendation.pk]))
    assert response.status_code == 403
    assert Recommendation.objects.filter(pk=recommendation.pk).exists()


def test_an_editor_cannot_manage_users_or_groups(client, editor):
    client.force_login(editor)
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    response = client.post(
        reverse("admin:auth_user_add"),
        {"username": "intruder", "password1": "x-Long-pass-1", "password2": "x-Long-pass-1"},
    )
    assert response.status_code == 403
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 403


# --- the Viewer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "tracker_recommendation_changelist",
        "tracker_evidence_changelist",
        "tracker_statuschange_changelist",
        "tracker_changealert_changelist",
        "tracker_source_changelist",
        "auditlog_logentry_changelist",
    ],
)
def test_a_viewer_reads_the_admin(client, viewer, recommendation, alert, name):
    client.force_login(viewer)
    assert client.get(reverse(f"admin:{name}")).status_code == 200


def test_a_viewer_reads_a_recommendation_and_its_audit_log(client, viewer, recommendation):
    client.force_login(viewer)
    page = client.get(reverse("admin:tracker_recommendation_change", args=[recommendation.pk]))
    assert page.status_code == 200
    assert "Record status change" not in page.content.decode()
    audit = reverse("admin:tracker_recommendation_auditlog", args=[recommendation.pk])
    assert client.get(audit).status_code == 200


def test_every_admin_write_is_forbidden_to_a_viewer(client, viewer, recommendation, alert):
    client.force_login(viewer)
    evidence = EvidenceFactory()
    writes = [
        (reverse("admin:tracker_recommendation_change", args=[recommendation.pk]), None),
        (reverse("admin:tracker_recommendation_add"), {}),
        (reverse("admin:tracker_recommendation_delete", args=[recommendation.pk]), {"post": "yes"}),
        (
            reverse("admin:tracker_recommendation_record_status", args=[recommendation.pk]),
            {"status": Status.IMPLEMENTED, "effective_on": "2024-09-01", "rationale": "No."},
        ),
        (reverse("admin:tracker_evidence_add"), {"title": "Nope", "kind": "news_report"}),
        (reverse("admin:tracker_evidence_change", args=[evidence.pk]), {"title": "Nope"}),
        (reverse("admin:tracker_evidence_delete", args=[evidence.pk]), {"post": "yes"}),
        (reverse("admin:tracker_changealert_accept", args=[alert.pk]), {"title": "Nope"}),
    ]
    for url, data in writes:
        if data is None:
            data = change_form_data(recommendation, [])
            data["title"] = "Changed by a viewer"
        assert client.post(url, data).status_code == 403, url
    client.post(
        reverse("admin:tracker_changealert_changelist"),
        {"action": "mark_reviewed", "_selected_action": [alert.pk]},
    )
    alert.refresh_from_db()
    recommendation.refresh_from_db()
    assert not alert.is_reviewed
    assert recommendation.title != "Changed by a viewer"
    assert recommendation.status_changes.count() == 1
    assert Evidence.objects.filter(pk=evidence.pk).exists()


@pytest.mark.parametrize(
    "name", ["api:recommendation-list", "api:evidence-list", "api:changealert-list"]
)
def test_a_viewer_reads_the_api(viewer, recommendation, alert, name):
    response = api_as(viewer).get(reverse(name))
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_every_api_write_is_forbidden_to_a_viewer(viewer, recommendation, alert):
    api = api_as(viewer)
    evidence = EvidenceFactory()
    detail = reverse("api:recommendation-detail", args=[recommendation.pk])
    writes = [
        ("post", reverse("api:recommendation-list"), {"code": "X-1", "text": "New."}),
        ("patch", detail, {"title": "Changed by a viewer"}),
        ("delete", detail, None),
        (
            "post",
            reverse("api:recommendation-record-status", args=[recommendation.pk]),
            {"status": "implemented", "effective_on": "2024-09-01", "rationale": "No."},
        ),
        ("post", reverse("api:evidence-list"), {"title": "Nope", "kind": "news_report"}),
        ("patch", reverse("api:evidence-detail", args=[evidence.pk]), {"title": "Nope"}),
        ("delete", reverse("api:evidence-detail", args=[evidence.pk]), None),
        ("post", reverse("api:changealert-review", args=[alert.pk]), None),
        ("post", reverse("api:document-list"), {"code": "X", "title": "Nope"}),
    ]
    for method, url, data in writes:
        response = getattr(api, method)(url, data, format="json")
        assert response.status_code == 403, (method, url)
    alert.refresh_from_db()
    recommendation.refresh_from_db()
    assert not alert.is_reviewed
    assert recommendation.title != "Changed by a viewer"
    assert recommendation.status_changes.count() == 1
    assert Evidence.objects.filter(pk=evidence.pk).exists()


def test_staff_without_the_view_permission_see_no_drafts_in_the_api(recommendation):
    # As in the admin, where such an account cannot open the recommendations at all.
    draft = RecommendationFactory(code="WRC-2024-9", is_published=False)
    api = api_as(UserFactory(username="hooks", is_staff=True))
    listed = api.get(reverse("api:recommendation-list")).json()["results"]
    assert [item["code"] for item in listed] == [recommendation.code]
    assert api.get(reverse("api:recommendation-detail", args=[draft.pk])).status_code == 404
