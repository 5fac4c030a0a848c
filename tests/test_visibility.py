"""What the public may see, asked of every surface at once (pages, feeds, badges, search,
kept copies, the API and its filters and schema), by an anonymous visitor, a signed-in reader
who is not staff, and staff.

The rules (tracker/models.py): a document is public when at least one of its recommendations
is published; evidence is public when it bears on a published recommendation, linked to it or
cited by its status history. Staff who may view recommendations see everything in the API.
"""

import datetime

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import DocumentFactory, RecommendationFactory, UserFactory
from tracker.models import Recommendation

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


def text(client, url):
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def api_ids(client, url):
    response = client.get(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, (url, response.status_code)
    return [item["id"] for item in response.json()["results"]]


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
