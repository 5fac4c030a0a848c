"""The staff's workspace: every page renders, lists stay cheap, history is written one way."""

import datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.db.models import ProtectedError
from django.urls import reverse

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
    ThemeFactory,
)
from tests.support.staff import change_form_data
from tracker.models import (
    Agency,
    Document,
    Evidence,
    Ownership,
    Publisher,
    Recommendation,
    Source,
    StatusChange,
    Theme,
)

Status = Recommendation.Status
pytestmark = pytest.mark.django_db

MODELS = [Publisher, Agency, Theme, Document, Recommendation, StatusChange, Evidence, Ownership]


@pytest.fixture
def child_with_history(uscis):
    """A document with a parent, a child led by USCIS, evidence and one status change."""
    document = DocumentFactory(code="WRC-2024")
    parent = RecommendationFactory(document=document, code="WRC-2024-1", lead=uscis)
    child = RecommendationFactory(document=document, code="WRC-2024-1.1", parent=parent)
    Ownership.objects.create(recommendation=child, agency=uscis, role=Ownership.Role.LEAD)
    child.themes.add(ThemeFactory(name="Legal pathways"))
    evidence = EvidenceFactory(title="USCIS updates its dates")
    child.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 1), evidence=[evidence]
    )
    return child


def admin_url(model, view, *args):
    return reverse(f"admin:tracker_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_changelist_renders_for_staff(client, admin_user, child_with_history, model):
    client.force_login(admin_user)
    response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_change_page_renders_for_staff(client, admin_user, child_with_history, model):
    client.force_login(admin_user)
    instance = model.objects.first()
    response = client.get(admin_url(model, "change", instance.pk))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "model", [m for m in MODELS if m is not StatusChange], ids=lambda model: model.__name__
)
def test_every_add_page_renders_for_staff(client, admin_user, model):
    client.force_login(admin_user)
    assert client.get(admin_url(model, "add")).status_code == 200


def test_status_history_cannot_be_added_edited_or_deleted_in_the_admin(
    client, admin_user, child_with_history
):
    client.force_login(admin_user)
    change = child_with_history.status_changes.get()
    assert client.get(admin_url(StatusChange, "add")).status_code == 403
    assert client.get(admin_url(StatusChange, "delete", change.pk)).status_code == 403
    response = client.post(
        admin_url(StatusChange, "change", change.pk),
        {"status": Status.REVERSED, "effective_on": "2024-09-01"},
    )
    assert response.status_code == 403
    change.refresh_from_db()
    assert change.status == Status.IMPLEMENTED


def test_recommendation_list_shows_status_lead_and_last_change(
    client, admin_user, child_with_history
):
    client.force_login(admin_user)
    response = client.get(admin_url(Recommendation, "changelist"))
    content = response.content.decode()
    assert "WRC-2024-1.1" in content
    assert "Implemented" in content
    assert "USCIS" in content
    assert "Sept. 1, 2024" in content


def test_recommendation_list_queries_do_not_grow_with_rows(
    client, admin_user, child_with_history, django_assert_max_num_queries
):
    client.force_login(admin_user)
    url = admin_url(Recommendation, "changelist")
    client.get(url)
    with django_assert_max_num_queries(20) as few:
        client.get(url)
    for index in range(30):
        RecommendationFactory(
            document=child_with_history.document, code=f"WRC-2024-9.{index}", lead=AgencyFactory()
        )
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url)


@pytest.mark.parametrize(
    ("params", "expected", "unexpected"),
    [
        ({"status__exact": "implemented"}, "WRC-2024-1.1", "WRC-2024-2"),
        ({"q": "second ask"}, "WRC-2024-2", "WRC-2024-1.1"),
        ({"is_published__exact": "0"}, "WRC-2024-2", "WRC-2024-1.1"),
    ],
)
def test_recommendation_list_filters_and_search(
    client, admin_user, child_with_history, params, expected, unexpected
):
    RecommendationFactory(
        document=child_with_history.document,
        code="WRC-2024-2",
        text="The second ask.",
        is_published=False,
    )
    client.force_login(admin_user)
    content = client.get(admin_url(Recommendation, "changelist"), params).content.decode()
    assert expected in content
    assert unexpected not in content


def test_recommendation_list_filters_by_owner_agency(
    client, admin_user, child_with_history, congress
):
    RecommendationFactory(document=child_with_history.document, code="WRC-2024-4.1", lead=congress)
    client.force_login(admin_user)
    url = admin_url(Recommendation, "changelist")
    content = client.get(url, {"agency": congress.pk}).content.decode()
    assert "WRC-2024-4.1" in content
    assert "WRC-2024-1.1" not in content


def test_document_and_agency_lists_show_counts_and_progress(
    client, admin_user, child_with_history, uscis
):
    client.force_login(admin_user)
    documents = client.get(admin_url(Document, "changelist")).content.decode()
    # The parent's progress and status are its only child's (implemented): 100% done.
    assert "2 implemented" in documents
    assert "100%" in documents
    agencies = client.get(admin_url(Agency, "changelist")).content.decode()
    assert "2 implemented" in agencies


def test_recording_a_status_change_from_the_admin(client, editor, child_with_history):
    client.force_login(editor)
    evidence = EvidenceFactory(title="A setback")
    url = reverse("admin:tracker_recommendation_record_status", args=[child_with_history.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {"status": Status.REVERSED, "effective_on": "2024-10-02", "evidence": [evidence.pk]},
    )
    assert response.status_code == 302
    child_with_history.refresh_from_db()
    assert child_with_history.status == Status.REVERSED
    latest = child_with_history.status_changes.latest_first().first()
    assert latest.recorded_by == editor
    assert list(latest.evidence.all()) == [evidence]
    assert LogEntry.objects.filter(object_id=str(child_with_history.pk)).exists()


def test_the_admin_form_refuses_a_change_without_evidence_or_rationale(
    client, editor, child_with_history
):
    client.force_login(editor)
    url = reverse("admin:tracker_recommendation_record_status", args=[child_with_history.pk])
    response = client.post(url, {"status": Status.REVERSED, "effective_on": "2024-10-02"})
    assert response.status_code == 200
    assert "needs evidence or a rationale" in response.content.decode()
    assert child_with_history.status_changes.count() == 1


def test_a_viewer_cannot_record_a_status_change(client, viewer, child_with_history):
    client.force_login(viewer)
    url = reverse("admin:tracker_recommendation_record_status", args=[child_with_history.pk])
    assert client.get(url).status_code == 403
    response = client.post(url, {"status": Status.REVERSED, "rationale": "No."})
    assert response.status_code == 403
    assert child_with_history.status_changes.count() == 1


def test_the_change_page_links_to_the_status_form_and_shows_history(
    client, editor, child_with_history
):
    client.force_login(editor)
    content = client.get(
        admin_url(Recommendation, "change", child_with_history.pk)
    ).content.decode()
    assert (
        reverse("admin:tracker_recommendation_record_status", args=[child_with_history.pk])
        in content
    )
    assert "USCIS updates its dates" in content
    assert "100%" in content


def test_publishing_actions_switch_drafts(client, admin_user, child_with_history):
    client.force_login(admin_user)
    draft = RecommendationFactory(document=child_with_history.document, is_published=False)
    client.post(
        admin_url(Recommendation, "changelist"),
        {"action": "publish", "_selected_action": [draft.pk]},
    )
    draft.refresh_from_db()
    assert draft.is_published


def test_staff_export_recommendations_as_the_importer_csv(client, admin_user, child_with_history):
    client.force_login(admin_user)
    response = client.post(
        admin_url(Document, "changelist"),
        {
            "action": "export_recommendations_csv",
            "_selected_action": [child_with_history.document.pk],
        },
    )
    assert response["Content-Type"] == "text/csv"
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("code,parent_code,section,title,text")
    assert len(lines) == 3
    child_row = next(line for line in lines if line.startswith("WRC-2024-1.1,"))
    assert "WRC-2024-1," in child_row and "USCIS" in child_row and "Legal pathways" in child_row

    from_list = client.post(
        admin_url(Recommendation, "changelist"),
        {"action": "export_csv", "_selected_action": [child_with_history.pk]},
    )
    assert from_list.content.decode().splitlines()[1] == child_row


def test_a_viewer_cannot_run_actions_that_change_data(client, viewer, child_with_history):
    draft = RecommendationFactory(document=child_with_history.document, is_published=False)
    client.force_login(viewer)
    response = client.post(
        admin_url(Recommendation, "changelist"),
        {"action": "publish", "_selected_action": [draft.pk]},
    )
    assert response.status_code in {200, 302}
    draft.refresh_from_db()
    assert not draft.is_published


def test_staff_without_source_rights_cannot_watch_evidence_urls(client, editor, child_with_history):
    evidence = child_with_history.evidence.get()
    client.force_login(editor)
    client.post(
        admin_url(Evidence, "changelist"),
        {"action": "watch_urls", "_selected_action": [evidence.pk]},
    )
    assert not Source.objects.exists()


def test_two_leads_in_the_owner_inline_are_refused_clearly(client, admin_user, uscis, congress):
    recommendation = RecommendationFactory(lead=uscis)
    lead = recommendation.ownerships.get()
    client.force_login(admin_user)
    response = client.post(
        admin_url(Recommendation, "change", recommendation.pk),
        change_form_data(recommendation, [(lead.pk, uscis, "lead"), (None, congress, "lead")]),
    )
    assert response.status_code == 200
    assert "one lead agency" in response.content.decode()
    assert recommendation.ownerships.count() == 1


def test_the_lead_can_be_swapped_in_one_save(client, admin_user, uscis, congress):
    recommendation = RecommendationFactory(lead=uscis)
    lead = recommendation.ownerships.get()
    other = Ownership.objects.create(
        recommendation=recommendation, agency=congress, role="supporting"
    )
    client.force_login(admin_user)
    response = client.post(
        admin_url(Recommendation, "change", recommendation.pk),
        change_form_data(
            recommendation, [(lead.pk, uscis, "supporting"), (other.pk, congress, "lead")]
        ),
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert recommendation.ownerships.get(role="lead").agency == congress


def test_evidence_cited_by_history_cannot_be_deleted(child_with_history):
    evidence = child_with_history.evidence.get()
    with pytest.raises(ProtectedError):
        evidence.delete()
    with pytest.raises(ProtectedError):
        child_with_history.delete()
    assert child_with_history.status_changes.get().evidence.get() == evidence


def test_a_javascript_url_is_never_rendered_as_a_link(client, admin_user):
    Evidence.objects.create(title="Hostile", url="javascript:alert(document.domain)")
    client.force_login(admin_user)
    content = client.get(admin_url(Evidence, "changelist")).content.decode()
    assert "Hostile" in content
    assert 'href="javascript:' not in content


def test_an_agency_with_nothing_assigned_says_so_rather_than_zero_percent(admin_client):
    AgencyFactory(name="Bureau of Nothing Yet", acronym="BNY")
    page = admin_client.get(reverse("admin:tracker_agency_changelist") + "?q=BNY").content.decode()
    assert "Nothing assigned" in page
    assert ">0%<" not in page
