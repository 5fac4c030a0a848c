"""Atom feeds of updates: status changes of published recommendations, with their evidence."""

import datetime
import xml.etree.ElementTree as ET

import feedparser
import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
)
from tracker.feeds import FEED_LENGTH
from tracker.models import Ownership, Recommendation
from tracker.views import PUBLIC_MAX_AGE

Status = Recommendation.Status
pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"
HOSTILE = "<script>alert(\"x\")</script> & 'quotes' ]]>"


@pytest.fixture
def world(uscis, congress):
    """Two documents; a published recommendation with two changes, a draft with one, and a
    recommendation of the other document owned by Congress."""
    wrc = DocumentFactory(code="WRC-2024", title="Migration does not start at the border")
    hill = DocumentFactory(code="HILL-2021", title="Five immediate steps")
    pathways = RecommendationFactory(
        document=wrc, code="WRC-2024-1", title="Expand legal pathways", lead=uscis
    )
    draft = RecommendationFactory(
        document=wrc, code="WRC-2024-9", title="Secret draft", is_published=False, lead=uscis
    )
    funding = RecommendationFactory(
        document=hill, code="HILL-2021-2", title="Fund cash for work", lead=congress
    )
    report = EvidenceFactory(
        title="USCIS widens parole", outlet="The Hill", url="https://news.example.org/parole"
    )
    pathways.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 8, 1), evidence=[report]
    )
    draft.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 8, 2), rationale="Draft news."
    )
    funding.record_status(
        Status.STALLED, effective_on=datetime.date(2024, 8, 3), rationale="Congress adjourned."
    )
    pathways.record_status(
        Status.PARTIAL, effective_on=datetime.date(2024, 9, 1), rationale="Half of it is done."
    )
    return {"wrc": wrc, "hill": hill, "pathways": pathways, "draft": draft, "funding": funding}


def read_feed(client, url, **headers):
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    return response, feed


def test_the_site_feed_lists_published_changes_newest_first(client, world):
    _response, feed = read_feed(client, reverse("public:feed_updates"))
    titles = [entry.title for entry in feed.entries]
    assert titles == [
        "WRC-2024-1: Partially implemented — Expand legal pathways",
        "HILL-2021-2: Stalled — Fund cash for work",
        "WRC-2024-1: In progress — Expand legal pathways",
    ]
    assert "Secret draft" not in str(feed)
    assert feed.feed.title == "Tracker: updates on recommendations"
    assert feed.feed.link == "http://testserver/"


def test_entries_link_to_the_public_recommendation_page_with_unique_ids(client, world):
    _response, feed = read_feed(client, reverse("public:feed_updates"))
    page = "http://testserver" + reverse(
        "public:recommendation", kwargs={"document": "WRC-2024", "code": "WRC-2024-1"}
    )
    newest, _stalled, oldest = feed.entries
    assert newest.link.startswith(page + "#change-")
    assert oldest.link.startswith(page + "#change-")
    ids = [entry.id for entry in feed.entries]
    assert len(set(ids)) == len(ids)
    assert all(entry.updated_parsed for entry in feed.entries)
    assert client.get(newest.link.removeprefix("http://testserver")).status_code == 200


def test_an_entry_shows_the_status_date_rationale_and_evidence(client, world):
    _response, feed = read_feed(client, reverse("public:feed_updates"))
    oldest = feed.entries[-1]
    assert "In progress" in oldest.summary
    assert "since Aug. 1, 2024" in oldest.summary
    assert '<a href="https://news.example.org/parole">USCIS widens parole</a>' in oldest.summary
    assert "Half of it is done." in feed.entries[0].summary
    assert [tag.term for tag in oldest.tags] == ["In progress", "WRC-2024"]


def test_correcting_cited_evidence_updates_the_entry(client, world):
    _response, before = read_feed(client, reverse("public:feed_updates"))
    report = world["pathways"].evidence.get()
    report.title = "USCIS widens parole for Haitians"
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=1)):
        report.save()
    _response, after = read_feed(client, reverse("public:feed_updates"))
    assert after.entries[-1].updated_parsed > before.entries[-1].updated_parsed
    assert after.entries[-1].id == before.entries[-1].id


def test_the_document_feed_holds_that_documents_changes_only(client, world):
    _response, feed = read_feed(client, reverse("public:feed_document", args=["WRC-2024"]))
    assert [entry.title.split(":")[0] for entry in feed.entries] == ["WRC-2024-1", "WRC-2024-1"]
    assert feed.feed.title == "Tracker: updates on “Migration does not start at the border”"
    assert feed.feed.link == "http://testserver" + reverse("public:document", args=["WRC-2024"])


def test_the_agency_feed_holds_what_the_agency_leads_or_supports(client, world, congress):
    Ownership.objects.create(
        recommendation=world["pathways"], agency=congress, role=Ownership.Role.SUPPORTING
    )
    _response, feed = read_feed(client, reverse("public:feed_agency", args=[congress.slug]))
    codes = [entry.title.split(":")[0] for entry in feed.entries]
    assert codes == ["WRC-2024-1", "HILL-2021-2", "WRC-2024-1"]
    _response, feed = read_feed(client, reverse("public:feed_agency", args=["uscis"]))
    assert [entry.title.split(":")[0] for entry in feed.entries] == ["WRC-2024-1", "WRC-2024-1"]
    assert "Secret draft" not in str(feed)


def test_a_parent_s_entries_say_what_its_sub_recommendations_show(client, world):
    pathways = world["pathways"]
    child = RecommendationFactory(document=pathways.document, code="WRC-2024-1.1", parent=pathways)
    child.record_status(Status.IMPLEMENTED, effective_on=datetime.date(2024, 9, 1), rationale="x")

    _response, feed = read_feed(client, reverse("public:feed_document", args=["WRC-2024"]))

    entries = {entry.title.split(":")[0]: entry for entry in feed.entries}
    assert (
        "Today it shows <strong>Implemented</strong>: 1 of 1 sub-recommendation moving."
        in entries["WRC-2024-1"].summary
    )
    assert "Today it shows" not in entries["WRC-2024-1.1"].summary


def test_an_agency_feed_holds_what_its_sub_agencies_lead_or_support(client, world, uscis):
    dhs = AgencyFactory(name="Department of Homeland Security", acronym="DHS")
    uscis.parent = dhs
    uscis.save()

    _response, feed = read_feed(client, reverse("public:feed_agency", args=[dhs.slug]))

    assert [entry.title.split(":")[0] for entry in feed.entries] == ["WRC-2024-1", "WRC-2024-1"]
    assert "Secret draft" not in str(feed)


def test_unknown_documents_agencies_and_draft_only_documents_have_no_feed(client, world):
    drafts_only = DocumentFactory(code="DRAFT-2025")
    RecommendationFactory(document=drafts_only, is_published=False)
    assert client.get(reverse("public:feed_document", args=["NOPE-1"])).status_code == 404
    assert client.get(reverse("public:feed_document", args=["DRAFT-2025"])).status_code == 404
    assert client.get(reverse("public:feed_agency", args=["nope"])).status_code == 404


def test_hostile_titles_stay_text(client, world):
    pathways = world["pathways"]
    pathways.title = HOSTILE
    pathways.text = HOSTILE
    pathways.save()
    world["pathways"].evidence.update(title=HOSTILE, outlet=HOSTILE)
    response, feed = read_feed(client, reverse("public:feed_updates"))
    assert feed.entries[0].title == f"WRC-2024-1: Partially implemented — {HOSTILE}"
    root = ET.fromstring(response.content)
    for summary in root.iter(f"{ATOM}summary"):
        # The summary is HTML carried as text: the titles in it are escaped once more.
        assert "<script>" not in summary.text
    assert "&lt;script&gt;" in feed.entries[-1].summary


def test_a_feed_is_bounded_and_its_queries_do_not_grow(client, world, django_assert_num_queries):
    recommendations = RecommendationFactory.create_batch(6, document=world["wrc"])
    for day, recommendation in enumerate(recommendations * 10, start=1):
        report = EvidenceFactory()
        recommendation.record_status(
            Status.IN_PROGRESS,
            effective_on=datetime.date(2025, 1, 1) + datetime.timedelta(days=day),
            evidence=[report, EvidenceFactory()],
        )
    # The feed itself, then its changes, their evidence and their sub-recommendations.
    with django_assert_num_queries(3):
        _response, feed = read_feed(client, reverse("public:feed_updates"))
    assert len(feed.entries) == FEED_LENGTH
    with django_assert_num_queries(4):
        read_feed(client, reverse("public:feed_document", args=["WRC-2024"]))
    with django_assert_num_queries(5):  # and the agencies under it
        read_feed(client, reverse("public:feed_agency", args=["uscis"]))


def test_feeds_speak_spanish_to_spanish_readers(client, world):
    _response, feed = read_feed(
        client, reverse("public:feed_updates"), accept_language="es-ES,es;q=0.9"
    )
    assert feed.feed.language == "es"
    assert feed.feed.title == "Tracker: novedades sobre las recomendaciones"
    assert feed.entries[0].title == "WRC-2024-1: Implementada parcialmente — Expand legal pathways"
    assert "Estado:" in feed.entries[0].summary


def test_feeds_are_cached_briefly_and_answer_304_when_nothing_changed(client, world):
    response, _feed = read_feed(client, reverse("public:feed_updates"))
    assert f"max-age={PUBLIC_MAX_AGE}" in response["Cache-Control"]
    assert "Accept-Language" in response["Vary"]
    assert response["ETag"]
    again = client.get(reverse("public:feed_updates"), headers={"if-none-match": response["ETag"]})
    assert again.status_code == 304


def test_feeds_take_reads_only(client, world):
    assert client.head(reverse("public:feed_updates")).status_code == 200
    assert client.post(reverse("public:feed_updates")).status_code == 405


def test_entries_are_dated_by_when_the_change_happened(client, world):
    _, feed = read_feed(client, reverse("public:feed_document", args=["HILL-2021"]))
    (entry,) = feed.entries
    happened = timezone.make_aware(datetime.datetime(2024, 8, 3))
    assert entry.published == happened.isoformat()
    assert entry.updated_parsed >= entry.published_parsed  # recorded today


@pytest.mark.parametrize(
    ("page", "feed", "shows", "hides"),
    [
        ("public:updates", "public:feed_updates", ["WRC-2024-1", "HILL-2021-2"], ["WRC-2024-9"]),
        (("public:updates_document", "WRC-2024"), ("public:feed_document", "WRC-2024"),
         ["WRC-2024-1"], ["HILL-2021-2", "WRC-2024-9"]),
        (("public:updates_agency", "congress"), ("public:feed_agency", "congress"),
         ["HILL-2021-2"], ["WRC-2024-1"]),
    ],
)  # fmt: skip
def test_each_feed_has_a_page_a_browser_shows(client, world, page, feed, shows, hides):
    def url(name):
        return reverse(name) if isinstance(name, str) else reverse(name[0], args=name[1:])

    response = client.get(url(page))
    text = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert f'<code class="copyable">http://testserver{url(feed)}</code>' in text
    assert all(code in text for code in shows)
    assert not any(code in text for code in hides)
    assert "Secret draft" not in text


def test_the_menu_opens_the_readable_page_not_the_xml(client, world):
    home = client.get(reverse("public:home")).content.decode()
    assert f'<a href="{reverse("public:updates")}">Updates</a>' in home
    assert f'href="{reverse("public:feed_updates")}" type="application/atom+xml"' not in home
    assert client.get(reverse("public:updates_document", args=["NOPE"])).status_code == 404


def test_a_change_from_before_the_document_reads_as_background(client, world):
    world["hill"].published_on = datetime.date(2024, 9, 1)  # after its stalled change
    world["hill"].save()
    _, feed = read_feed(client, reverse("public:feed_document", args=["HILL-2021"]))
    (entry,) = feed.entries
    assert (
        "Background: <strong>Stalled</strong> since Aug. 3, 2024, before the document of Sept. 1"
        in (entry.summary)
    )
    _, wrc = read_feed(client, reverse("public:feed_document", args=["WRC-2024"]))
    assert all("Background" not in entry.summary for entry in wrc.entries)
