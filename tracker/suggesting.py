"""Rank recommendations for feed entries: which ones a new entry is most likely evidence of.

Monitoring asks before it records a feed check (ranking is the slow part of it, so it runs
before any row is locked); the ranking is stored on each entry as its `suggestions`.
"""

import re
from functools import partial

from django.db import connection

from .models import FeedEntry, Recommendation, Source

# How many recommendations a feed entry suggests.
SUGGESTION_LIMIT = 5

# Words worth matching between a feed entry and a recommendation.
WORD = re.compile(r"[^\W\d_]{4,}")
STOPWORDS = frozenset(
    """that this with from have will would should their there they them which what when where
    also about into more than been were other such these those some could must under over
    after before while said says year years people including""".split()
)


def suggest_for_new_entries(source_id, entries):
    """Return {guid: suggestions} for the entries source `source_id` has not stored yet."""
    fresh = FeedEntry.objects.unseen(entries, source_id=source_id)
    texts = [f"{entry['title']}\n{entry['summary']}" for entry in fresh]
    links = Source.recommendations.through.objects.filter(source_id=source_id)
    prefer = set(links.values_list("recommendation_id", flat=True))
    ranked = suggest_recommendations(texts, prefer=prefer)
    return {entry["guid"]: suggestions for entry, suggestions in zip(fresh, ranked, strict=True)}


def search_words(text):
    return {word for word in WORD.findall(text.lower()) if word not in STOPWORDS}


def suggest_recommendations(texts, *, prefer=(), limit=SUGGESTION_LIMIT):
    """Return, for each of `texts`, [{"id", "score"}] of the most alike recommendations.

    PostgreSQL ranks with full-text search over title, text and note (a query per text);
    elsewhere a word-overlap score over the recommendations, read once, stands in.
    Recommendations in `prefer` (those linked to the source) rank first.
    """
    if connection.vendor == "postgresql":
        rank = partial(_rank_with_postgres, limit=limit * 2)
    else:
        rank = partial(_rank_by_overlap, index=_recommendation_words(), limit=limit * 2)
    results = []
    for text in texts:
        words = search_words(text)
        scored = rank(words) if words else []
        scored.sort(key=lambda item: (item[0] not in prefer, -item[1]))
        results.append(
            [{"id": pk, "score": round(score, 4)} for pk, score in scored[:limit] if score > 0]
        )
    return results


def _rank_with_postgres(words, *, limit):
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    query = SearchQuery(" | ".join(sorted(words)), search_type="raw", config="english")
    vector = SearchVector("title", "text", "note", config="english")
    rows = (
        Recommendation.objects.annotate(rank=SearchRank(vector, query))
        .filter(rank__gt=0)
        .order_by("-rank", "pk")
        .values_list("pk", "rank")[:limit]
    )
    return [(pk, float(rank)) for pk, rank in rows]


def _recommendation_words():
    rows = Recommendation.objects.values_list("pk", "title", "text", "note")
    return [(pk, search_words(f"{title} {text} {note}")) for pk, title, text, note in rows]


def _rank_by_overlap(words, *, index, limit):
    scored = [(pk, len(words & known) / len(words)) for pk, known in index if words & known]
    scored.sort(key=lambda item: -item[1])
    return scored[:limit]
