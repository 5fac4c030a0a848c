"""What the public may see, asked of every surface at once (pages, feeds, badges, search,
kept copies, the API and its filters and schema), by an anonymous visitor, a signed-in reader
who is not staff, and staff.

The rules (tracker/models.py): a document is public when at least one of its recommendations
is published; evidence is public when it bears on a published recommendation, linked to it or
cited by its status history. Staff who may view recommendations see everything in the API.
"""

import datetime

import feedparser
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import DocumentFactory, EvidenceFactory, RecommendationFactory, UserFactory
from tracker.models import Recommendation, Source, SourceVersion

Status = Recommendation.Status
pytestmark = pytest.mark.django_db


@pytest.fixture(params=["anonymous", "reader"])
def public_client(request):
    """Someone who is not staff: nobody signed in, or a signed-in reader."""
    client = Client()
    if request.param == "reader":
        client.force_login(UserFactory(username="reader", is_staff=False))
    return client


@pytest.fixture
def staff_client(viewer):
    client = Client()
    client.force_login(viewer)
    return client


def record(recommendation, status, *, evidence=(), rationale=""):
    return recommendation.record_status(
        status, effective_on=datetime.date(2024, 8, 1), evidence=evidence, rationale=rationale
    )


def keep_copy(evidence, text):
    """A kept copy of the page the evidence quotes (a watched source at its URL)."""
    source = Source.objects.create(url=evidence.url, title="Kept page")
    return SourceVersion.objects.create(
        source=source,
        content_hash=str(evidence.pk),
        text=text,
        url=source.url,
        http_status=200,
        fetched_at=timezone.now() - datetime.timedelta(days=1),
    )


def text(client, url):
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def api_ids(client, url):
    response = client.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, (url, response.status_code)
    return [item["id"] for item in response.json()["results"]]


def feed_text(client):
    response = client.get(reverse("public:feed_updates"))
    assert response.status_code == 200
    return str(feedparser.parse(response.content))


# Documents: public when at least one recommendation is published


@pytest.fixture
def embargoed():
    """A document whose only recommendation is a draft, beside a public one."""
    public = DocumentFactory(code="PUB-2024", title="Public findings")
    RecommendationFactory(document=public, code="PUB-2024-1")
    document = DocumentFactory(
        code="EMB-2025", title="Embargoed findings", summary="Launches next month."
    )
    draft = RecommendationFactory(document=document, code="EMB-2025-1", is_published=False)
    record(draft, Status.IN_PROGRESS, rationale="Work started quietly.")
    return {"document": document, "public": public, "draft": draft}


def test_a_drafts_only_document_is_hidden_on_every_surface(public_client, embargoed):
    client, document = public_client, embargoed["document"]
    api_detail = reverse("api:document-detail", args=[document.pk])

    assert api_ids(client, reverse("api:document-list")) == [embargoed["public"].pk]
    assert api_ids(client, reverse("api:document-list") + "?search=Embargoed") == []
    assert api_ids(client, reverse("api:document-list") + "?search=Launches") == []
    assert client.get(api_detail).status_code == 404
    # The browsable API's filter form offers public documents only, and naming the embargoed
    # one is answered as naming none that exists.
    browsable = text(client, reverse("api:recommendation-list") + "?format=api")
    assert "Public findings" in browsable
    assert "Embargoed findings" not in browsable
    by_embargoed = client.get(reverse("api:recommendation-list"), {"document": document.pk})
    by_unknown = client.get(reverse("api:recommendation-list"), {"document": 10**9})
    assert by_embargoed.status_code == by_unknown.status_code == 400
    assert "Embargoed findings" not in text(client, reverse("schema"))
    for url in ("/", "/search/?q=Embargoed", "/subscribe/", reverse("public:feed_updates")):
        assert "Embargoed findings" not in text(client, url), url
    for url in (
        document.get_absolute_url(),
        reverse("public:feed_document", args=[document.code]),
        reverse("public:badge_document", args=[document.code]),
    ):
        assert client.get(url).status_code == 404, url


def test_staff_see_a_drafts_only_document_in_the_api(staff_client, embargoed):
    document = embargoed["document"]

    assert document.pk in api_ids(staff_client, reverse("api:document-list"))
    assert api_ids(staff_client, reverse("api:document-list") + "?search=Embargoed") == [
        document.pk
    ]
    detail = staff_client.get(reverse("api:document-detail", args=[document.pk])).json()
    assert detail["title"] == "Embargoed findings"
    assert detail["counts"]["in_progress"] == 1
    assert "Embargoed findings" in text(
        staff_client, reverse("api:recommendation-list") + "?format=api"
    )
    assert api_ids(
        staff_client, reverse("api:recommendation-list") + f"?document={document.pk}"
    ) == [embargoed["draft"].pk]


def test_a_document_goes_private_when_its_last_published_recommendation_is_withdrawn(
    public_client,
):
    document = DocumentFactory(code="GONE-2024", title="Withdrawn findings")
    recommendation = RecommendationFactory(document=document)
    detail = reverse("api:document-detail", args=[document.pk])
    assert public_client.get(detail).status_code == 200
    assert public_client.get(document.get_absolute_url()).status_code == 200

    recommendation.is_published = False
    recommendation.save()

    assert public_client.get(detail).status_code == 404
    assert api_ids(public_client, reverse("api:document-list")) == []
    assert public_client.get(document.get_absolute_url()).status_code == 404


# Evidence: public when linked to a published recommendation or cited by its history


@pytest.fixture
def cited_then_unlinked():
    """Evidence cited by a published recommendation's status change, then unlinked from it:
    the change still cites it (history is append-only), so it stays public."""
    recommendation = RecommendationFactory(code="PUB-1", title="Widen parole")
    evidence = EvidenceFactory(
        title="Parole widened for families", url="https://news.example.org/p"
    )
    change = record(recommendation, Status.PARTIAL, evidence=[evidence])
    copy = keep_copy(evidence, "The story as it read then.")
    recommendation.evidence.remove(evidence)
    return {"recommendation": recommendation, "evidence": evidence, "change": change, "copy": copy}


def test_evidence_cited_by_a_published_change_stays_public_everywhere_after_unlinking(
    public_client, cited_then_unlinked
):
    client = public_client
    recommendation = cited_then_unlinked["recommendation"]
    evidence, copy = cited_then_unlinked["evidence"], cited_then_unlinked["copy"]
    copy_url = reverse("public:source_version", args=[copy.pk])

    page = text(client, recommendation.get_absolute_url())
    assert "Parole widened for families" in page
    assert f'href="{copy_url}"' in page
    kept = text(client, copy_url)
    assert "The story as it read then." in kept
    assert "Parole widened for families" in kept and "PUB-1" in kept
    assert "Parole widened for families" in feed_text(client)
    found = text(client, "/search/?q=Parole+widened")
    assert "Parole widened for families" in found
    assert recommendation.get_absolute_url() in found  # what it is about: the citing change
    detail = client.get(reverse("api:evidence-detail", args=[evidence.pk]))
    assert detail.status_code == 200
    assert detail.json()["title"] == "Parole widened for families"
    assert api_ids(client, reverse("api:evidence-list")) == [evidence.pk]
    assert api_ids(client, reverse("api:evidence-list") + "?search=Parole") == [evidence.pk]
    changes = client.get(reverse("api:statuschange-list"), HTTP_ACCEPT="application/json").json()
    assert changes["results"][0]["evidence"] == [evidence.pk]


@pytest.fixture
def private_evidence():
    """Evidence of a draft, and evidence whose only citing recommendation went back to draft."""
    draft = RecommendationFactory(code="DRAFT-1", is_published=False)
    of_draft = EvidenceFactory(title="Zebra evidence of a draft", url="https://news.example.org/d")
    record(draft, Status.IMPLEMENTED, evidence=[of_draft])
    withdrawn = RecommendationFactory(code="WITHDRAWN-1")
    of_withdrawn = EvidenceFactory(
        title="Zebra evidence withdrawn", url="https://news.example.org/w"
    )
    record(withdrawn, Status.PARTIAL, evidence=[of_withdrawn])
    withdrawn.evidence.remove(of_withdrawn)
    withdrawn.is_published = False
    withdrawn.save()
    copies = [keep_copy(of_draft, "Draft copy."), keep_copy(of_withdrawn, "Withdrawn copy.")]
    return {
        "drafts": [draft, withdrawn],
        "evidence": [of_draft, of_withdrawn],
        "copies": copies,
    }


def test_evidence_of_drafts_only_is_hidden_everywhere(public_client, private_evidence):
    client = public_client
    RecommendationFactory(code="PUB-2")  # something public, so pages and feeds are not empty

    for draft in private_evidence["drafts"]:
        assert client.get(draft.get_absolute_url()).status_code == 404
    for copy in private_evidence["copies"]:
        assert client.get(reverse("public:source_version", args=[copy.pk])).status_code == 404
    for evidence in private_evidence["evidence"]:
        detail = reverse("api:evidence-detail", args=[evidence.pk])
        assert client.get(detail).status_code == 404
    assert api_ids(client, reverse("api:evidence-list")) == []
    assert api_ids(client, reverse("api:evidence-list") + "?search=Zebra") == []
    for url in ("/", "/search/?q=Zebra", reverse("public:feed_updates")):
        assert "Zebra evidence" not in text(client, url), url


def test_staff_see_the_evidence_of_drafts_in_the_api(staff_client, private_evidence):
    expected = sorted(evidence.pk for evidence in private_evidence["evidence"])

    assert sorted(api_ids(staff_client, reverse("api:evidence-list"))) == expected
    for evidence in private_evidence["evidence"]:
        detail = reverse("api:evidence-detail", args=[evidence.pk])
        assert staff_client.get(detail).status_code == 200
