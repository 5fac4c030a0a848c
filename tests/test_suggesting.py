"""Ranking recommendations for feed entries (full-text search on PostgreSQL)."""

import pytest

from tests.factories import RecommendationFactory
from tracker.models import FeedEntry, Source
from tracker.suggesting import suggest_for_new_entries, suggest_recommendations

pytestmark = pytest.mark.django_db


@pytest.fixture
def minors():
    return RecommendationFactory(
        code="WRC-2024-1.6",
        title="Expand family reunification and the Central American Minors program",
        text="Expand family reunification pathways and the Central American Minors program.",
    )


@pytest.fixture
def shelters():
    return RecommendationFactory(
        code="WRC-2024-4.2",
        title="Fund shelters for migrants in Mexico",
        text="Fund shelters and family services for migrants waiting in Mexico.",
    )


def entry(guid, title, summary=""):
    return {
        "guid": guid,
        "link": f"https://www.dhs.gov/news/{guid}",
        "title": title,
        "summary": summary,
        "published_at": None,
    }


def test_the_most_alike_recommendation_ranks_first(minors, shelters):
    [ranked] = suggest_recommendations(["DHS expands the Central American Minors program"])
    assert ranked[0]["id"] == minors.pk
    assert shelters.pk not in [item["id"] for item in ranked]


def test_recommendations_linked_to_the_source_rank_first(minors, shelters):
    text = "Family reunification: shelters in Mexico and the Central American Minors program"
    [unlinked] = suggest_recommendations([text])
    [linked] = suggest_recommendations([text], prefer={shelters.pk})
    assert [item["id"] for item in unlinked] == [minors.pk, shelters.pk]
    assert [item["id"] for item in linked] == [shelters.pk, minors.pk]


def test_a_text_of_only_short_or_common_words_suggests_nothing(minors):
    assert suggest_recommendations(["This is what they said about it", ""]) == [[], []]


def test_only_entries_the_feed_has_not_stored_are_ranked(minors):
    source = Source.objects.create(url="https://www.dhs.gov/rss", kind=Source.Kind.FEED)
    FeedEntry.objects.create(source=source, guid="old", title="Central American Minors")
    entries = [
        entry("old", "Central American Minors program"),
        entry("new", "DHS expands the Central American Minors program"),
    ]
    suggestions = suggest_for_new_entries(source.pk, entries)
    assert list(suggestions) == ["new"]
    assert suggestions["new"][0]["id"] == minors.pk
