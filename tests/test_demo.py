"""The demo: both seed documents, the news reports as evidence, and the history they show."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from tracker.demo import DEMO_DIR, load_demo
from tracker.importing import parse_csv, parse_markdown, parse_op_ed
from tracker.models import Document, Evidence, Recommendation, StatusChange
from tracker.progress import progress_by_document, status_as_of

Status = Recommendation.Status
pytestmark = pytest.mark.django_db

WRC_SEED = "wrc-2024-migration-does-not-start-at-the-us-border.md"
HILL_SEED = "thehill-2021-five-immediate-migration-steps.txt"


@pytest.fixture
def demo():
    return load_demo()


def owners(code):
    recommendation = Recommendation.objects.get(code=code)
    lead = recommendation.ownerships.get(role="lead").agency.acronym
    supporting = recommendation.ownerships.filter(role="supporting")
    supporting = sorted(o.agency.acronym or o.agency.name for o in supporting)
    return lead, supporting


def test_the_demo_holds_both_documents_and_every_recommendation(demo):
    assert (demo.documents, demo.recommendations, demo.evidence) == (2, 25, 3)
    wrc = Document.objects.get(code="WRC-2024")
    assert wrc.publisher.name == "Women's Refugee Commission"
    assert wrc.kind == Document.Kind.BRIEF
    assert wrc.recommendations.filter(parent=None).count() == 5
    assert wrc.recommendations.exclude(parent=None).count() == 15
    hill = Document.objects.get(code="HILL-2021")
    assert (hill.kind, hill.author) == (Document.Kind.OP_ED, "Dan Restrepo")
    assert hill.recommendations.count() == 5
    assert not Recommendation.objects.filter(is_published=False).exists()
    assert all(r.ownerships.filter(role="lead").count() == 1 for r in Recommendation.objects.all())


def test_owners_are_curated_where_the_op_ed_names_no_agency(demo):
    assert owners("HILL-2021-1") == ("USAID", ["DOS"])
    assert owners("HILL-2021-2") == ("USAID", [])
    assert owners("HILL-2021-5") == ("Treasury", ["DOJ", "DOS"])
    assert owners("WRC-2024-1.3") == ("USCIS", ["DOS"])
    assert owners("WRC-2024-4.1") == ("Congress", ["PRM"])


def test_the_news_reports_are_evidence_with_a_dated_history(demo):
    assert demo.status_changes == 4
    step_four = Recommendation.objects.get(code="HILL-2021-4")
    history = [(c.effective_on, c.status) for c in step_four.status_changes.all()]
    assert history == [
        (datetime.date(2019, 3, 12), Status.STALLED),
        (datetime.date(2016, 7, 26), Status.PARTIAL),
        (datetime.date(2016, 1, 13), Status.IN_PROGRESS),
    ]
    assert step_four.status == Status.STALLED
    minors = Recommendation.objects.get(code="WRC-2024-1.6")
    assert minors.status == Status.IN_PROGRESS
    expansion = Evidence.objects.get(published_on=datetime.date(2016, 7, 26))
    assert set(expansion.recommendations.values_list("code", flat=True)) == {
        "HILL-2021-4",
        "WRC-2024-1.6",
        "WRC-2024-2.2",
    }
    assert "Central American Minors" in expansion.title
    setback = Evidence.objects.get(effect=Evidence.Effect.SETBACK)
    assert "Remain in Mexico" in setback.title
    assert all(change.evidence.exists() for change in StatusChange.objects.all())


def test_the_demo_history_answers_as_of_any_date(demo):
    step_four = Recommendation.objects.get(code="HILL-2021-4")
    assert status_as_of(datetime.date(2015, 12, 31))[step_four.pk] == Status.NOT_ASSESSED
    assert status_as_of(datetime.date(2016, 6, 1))[step_four.pk] == Status.IN_PROGRESS
    assert status_as_of(datetime.date(2018, 1, 1))[step_four.pk] == Status.PARTIAL
    wrc = Document.objects.get(code="WRC-2024")
    # One bullet of six in section 1 is in progress: 1/6 of a quarter, over five sections.
    assert progress_by_document([wrc.pk])[wrc.pk].progress == pytest.approx(0.25 / 6 / 5)


def test_loading_the_demo_again_changes_nothing(demo):
    before = (
        Recommendation.objects.count(),
        Evidence.objects.count(),
        StatusChange.objects.count(),
    )
    again = load_demo()
    assert again.status_changes == 0
    after = (
        Recommendation.objects.count(),
        Evidence.objects.count(),
        StatusChange.objects.count(),
    )
    assert after == before


def test_the_demo_tells_assessed_from_not_and_history_from_background(demo, client):
    """The op-ed of March 2021: its stalled step was stalled before it; four steps were never
    assessed, which the page says rather than "not started"."""
    op_ed = client.get(reverse("public:document", args=["HILL-2021"])).content.decode()
    step_four = client.get(
        reverse("public:recommendation", kwargs={"document": "HILL-2021", "code": "HILL-2021-4"})
    ).content.decode()

    assert "1 of 5 assessed · 0 implemented" in op_ed
    assert "status-not_started" not in op_ed and 'status-not_assessed">Not yet assessed' in op_ed
    assert "since March 24, 2021 (the document's date)" in step_four
    assert "Background: stalled since March 12, 2019, before the document." in step_four
    assert "Before this document" in step_four


def test_the_demo_user_is_refused_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("load_demo", "--demo-user", verbosity=0)
    assert not Document.objects.exists()


def test_the_demo_command_prints_how_to_log_in(settings, capsys):
    settings.DEBUG = True
    call_command("load_demo", "--demo-user")
    out = capsys.readouterr().out
    assert "Demo loaded: 2 documents, 25 recommendations" in out
    assert "DEMO ONLY" in out and "'demo'" in out
    assert "'editor' (password 'editor'): an editor" in out


def log_in(client, username, password):
    response = client.post(
        reverse("admin:login"), {"username": username, "password": password, "next": "/admin/"}
    )
    assert response.status_code == 302, f"{username} could not log in"


def test_the_demo_has_an_administrator_and_an_editor_login(settings, client):
    settings.DEBUG = True
    call_command("load_demo", "--demo-user", verbosity=0)
    log_in(client, "demo", "demo")
    index = client.get(reverse("admin:index")).content.decode()
    assert "Periodic tasks" in index and "Users" in index
    client.logout()
    log_in(client, "editor", "editor")
    editor = get_user_model().objects.get(username="editor")
    assert not editor.is_superuser and [g.name for g in editor.groups.all()] == ["Editor"]
    index = client.get(reverse("admin:index")).content.decode()
    assert "Recommendations" in index
    assert "Periodic tasks" not in index and "Tokens" not in index and "Users" not in index
    # Editors record status changes.
    recommendation = Recommendation.objects.get(code="WRC-2024-1.4")
    record = reverse("admin:tracker_recommendation_record_status", args=[recommendation.pk])
    assert client.get(record).status_code == 200


def test_the_admin_shows_the_demo(client, demo, admin_user):
    client.force_login(admin_user)
    documents = client.get(reverse("admin:tracker_document_changelist")).content.decode()
    assert "Migration Does Not Start at the US Border" in documents
    assert "18 not yet assessed · 2 in progress" in documents  # WRC-2024-1 by its 1.6
    assert "4 not yet assessed · 1 stalled" in documents
    hill = Document.objects.get(code="HILL-2021")
    listing = client.get(
        reverse("admin:tracker_recommendation_changelist"), {"document__id__exact": hill.pk}
    ).content.decode()
    assert "HILL-2021-4" in listing and "Stalled" in listing and "WRC-2024" not in listing


@pytest.mark.seeds
def test_the_shipped_demo_texts_are_the_seed_texts_as_published(seeds_dir):
    """The demo CSVs carry the recommendations as the seeds publish them."""
    for seed, parse, code, csv_name in [
        (WRC_SEED, parse_markdown, "WRC-2024", "wrc-2024.csv"),
        (HILL_SEED, parse_op_ed, "HILL-2021", "hill-2021.csv"),
    ]:
        from_seed = parse((seeds_dir / seed).read_text(encoding="utf-8"), document_code=code)
        shipped = parse_csv((DEMO_DIR / csv_name).read_text(encoding="utf-8"))
        assert [(r.code, r.parent_code, r.text, r.note) for r in shipped.recommendations] == [
            (r.code, r.parent_code, r.text, r.note) for r in from_seed.recommendations
        ]
