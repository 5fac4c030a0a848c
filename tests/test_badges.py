"""Embeddable SVG badges: a recommendation's status, a document's progress."""

import datetime
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from tests.factories import DocumentFactory, EvidenceFactory, RecommendationFactory
from tracker.badges import LABEL_COLOR, STATUS_COLORS, text_width
from tracker.models import Recommendation
from tracker.views import PUBLIC_MAX_AGE

Status = Recommendation.Status
pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(\"x\")</script> & 'quotes' ]]>\x07"


@pytest.fixture
def document():
    """WRC-2024 with two published recommendations (one implemented) and a draft."""
    document = DocumentFactory(code="WRC-2024", title="Migration does not start at the border")
    done = RecommendationFactory(document=document, code="WRC-2024-1", title="Expand pathways")
    done.record_status(
        Status.IMPLEMENTED, effective_on=datetime.date(2024, 8, 1), evidence=[EvidenceFactory()]
    )
    RecommendationFactory(document=document, code="WRC-2024-2", title="Fund shelters")
    draft = RecommendationFactory(document=document, code="WRC-2024-9", is_published=False)
    draft.record_status(Status.IMPLEMENTED, effective_on=datetime.date(2024, 8, 2), rationale="x")
    return document


def recommendation_badge_url(document, code):
    return reverse("public:badge_recommendation", kwargs={"document": document, "code": code})


def fetch_badge(client, url, **headers):
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    return response, ET.fromstring(response.content)


def texts(svg):
    """The words drawn on the badge, each once (each is drawn twice: shadow, then text)."""
    drawn = [text.text for text in svg.iter(f"{SVG}text")]
    return drawn[1::2]


def test_a_parent_s_badge_shows_what_its_sub_recommendations_say(client, document):
    parent = Recommendation.objects.get(code="WRC-2024-2")
    child = RecommendationFactory(document=document, code="WRC-2024-2.1", parent=parent)
    RecommendationFactory(document=document, code="WRC-2024-2.2", parent=parent)
    child.record_status(
        Status.IN_PROGRESS, effective_on=datetime.date(2024, 9, 1), evidence=[EvidenceFactory()]
    )

    _response, svg = fetch_badge(client, recommendation_badge_url("WRC-2024", "WRC-2024-2"))

    assert texts(svg) == ["status", "In progress"]
    assert svg.find(f"{SVG}title").text == (
        "WRC-2024-2 “Fund shelters”: In progress (1 of 2 sub-recommendations moving)"
        " (not yet verified)"
    )
    assert svg.find(f".//{SVG}rect[@x]").get("fill") == STATUS_COLORS[Status.IN_PROGRESS]


def test_a_recommendation_badge_shows_its_status_with_a_text_alternative(client, document):
    Recommendation.objects.filter(code="WRC-2024-1").update(
        last_reviewed_on=datetime.date(2024, 9, 2)
    )
    _response, svg = fetch_badge(client, recommendation_badge_url("WRC-2024", "WRC-2024-1"))
    assert texts(svg) == ["status", "Implemented"]
    alternative = "WRC-2024-1 “Expand pathways”: Implemented (last verified Sept. 2, 2024)"
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == alternative
    assert svg.find(f"{SVG}title").text == alternative
    assert svg.find(f".//{SVG}rect[@x]").get("fill") == STATUS_COLORS[Status.IMPLEMENTED]


def test_a_badge_is_as_wide_as_its_words(client, document):
    _response, done = fetch_badge(client, recommendation_badge_url("WRC-2024", "WRC-2024-1"))
    _response, idle = fetch_badge(client, recommendation_badge_url("WRC-2024", "WRC-2024-2"))
    assert texts(idle) == ["status", "Not yet assessed"]
    for svg, status in [(done, "Implemented"), (idle, "Not yet assessed")]:
        label, message = svg.findall(f".//{SVG}g/{SVG}rect")[:2]
        assert int(label.get("width")) == round(text_width("status")) + 10
        assert int(message.get("width")) == round(text_width(status)) + 10
        assert int(svg.get("width")) == int(label.get("width")) + int(message.get("width"))
    assert text_width("Partially implemented") > text_width("Implemented") > text_width("status")


def test_a_document_badge_shows_the_progress_of_its_published_recommendations(client, document):
    _response, svg = fetch_badge(client, reverse("public:badge_document", args=["WRC-2024"]))
    # One of two published recommendations implemented; the implemented draft does not count.
    assert texts(svg) == ["progress", "50%"]
    assert svg.get("aria-label") == (
        "WRC-2024 “Migration does not start at the border”: 50% progress, 1 of 2 assessed"
    )


def test_drafts_and_unknown_codes_have_no_badge(client, document):
    drafts_only = DocumentFactory(code="DRAFT-2025")
    RecommendationFactory(document=drafts_only, code="DRAFT-2025-1", is_published=False)
    for url in [
        recommendation_badge_url("WRC-2024", "WRC-2024-9"),
        recommendation_badge_url("WRC-2024", "WRC-2024-404"),
        recommendation_badge_url("OTHER-2020", "WRC-2024-1"),
        reverse("public:badge_document", args=["NOPE-1"]),
        reverse("public:badge_document", args=["DRAFT-2025"]),
    ]:
        assert client.get(url).status_code == 404, url


def test_hostile_titles_are_escaped_text(client, document):
    Recommendation.objects.filter(code="WRC-2024-1").update(title=HOSTILE)
    document.title = HOSTILE
    document.save()
    for url in [
        recommendation_badge_url("WRC-2024", "WRC-2024-1"),
        reverse("public:badge_document", args=["WRC-2024"]),
    ]:
        response, svg = fetch_badge(client, url)
        assert b"<script" not in response.content
        assert not list(svg.iter(f"{SVG}script"))
        clean = HOSTILE.replace("\x07", "")
        assert f"“{clean}”" in svg.find(f"{SVG}title").text
        assert f"“{clean}”" in svg.get("aria-label")


def test_badges_are_cached_briefly_and_revalidated_by_etag(client, document):
    url = recommendation_badge_url("WRC-2024", "WRC-2024-1")
    response, _svg = fetch_badge(client, url)
    assert f"max-age={PUBLIC_MAX_AGE}" in response["Cache-Control"]
    assert "public" in response["Cache-Control"]
    assert "Accept-Language" in response["Vary"]
    assert "Cookie" in response["Vary"]
    # Opened on its own rather than as an <img>, the SVG still runs nothing.
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    assert client.get(url, headers={"if-none-match": response["ETag"]}).status_code == 304
    Recommendation.objects.get(code="WRC-2024-1").record_status(
        Status.REVERSED, effective_on=datetime.date(2024, 9, 1), rationale="Rule withdrawn."
    )
    changed = client.get(url, headers={"if-none-match": response["ETag"]})
    assert changed.status_code == 200
    assert b"Reversed" in changed.content


def test_badges_speak_spanish_to_spanish_visitors(client, document):
    _response, svg = fetch_badge(
        client, recommendation_badge_url("WRC-2024", "WRC-2024-1"), accept_language="es"
    )
    assert texts(svg) == ["estado", "Implementada"]
    _response, svg = fetch_badge(
        client, reverse("public:badge_document", args=["WRC-2024"]), accept_language="es"
    )
    assert texts(svg) == ["avance", "50 %"]
    assert svg.get("aria-label").endswith(": 50 % de avance, 1 de 2 evaluadas")


def test_badges_take_reads_only(client, document):
    url = recommendation_badge_url("WRC-2024", "WRC-2024-1")
    assert client.head(url).status_code == 200
    assert client.post(url).status_code == 405


def test_badge_colours_keep_white_text_readable():
    """WCAG AA asks for a contrast of 4.5:1 for text this small."""

    def luminance(colour):
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for colour in [LABEL_COLOR, *STATUS_COLORS.values()]:
        assert (1.05) / (luminance(colour) + 0.05) >= 4.5, colour


def test_a_badge_costs_the_same_few_queries_however_big_the_document(
    client, document, django_assert_num_queries
):
    RecommendationFactory.create_batch(30, document=document)
    # The document, then its recommendations' progress.
    with django_assert_num_queries(2):
        fetch_badge(client, reverse("public:badge_document", args=["WRC-2024"]))
    # The recommendation, then its document's tree for its sub-recommendations' roll-up.
    with django_assert_num_queries(2):
        fetch_badge(client, recommendation_badge_url("WRC-2024", "WRC-2024-1"))
