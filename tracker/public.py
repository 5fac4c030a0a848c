"""What the public pages show: recent changes and evidence, the kept copies of evidence's
sources, and search. Who may see what is decided by the models' `public()` querysets (a
published recommendation, a document with one, evidence bearing on one); each function here
runs a fixed number of queries."""

from collections import defaultdict

from django.db.models import Max, Q

from .models import (
    Agency,
    ChangeAlert,
    CitedEvidence,
    Document,
    Evidence,
    Ownership,
    Recommendation,
    Source,
    SourceVersion,
    StatusChange,
)
from .texts import CONTENT_LANGUAGES

# The most results search returns of each kind, and the most words it looks for.
SEARCH_LIMIT = 50
SEARCH_MAX_WORDS = 8
SEARCH_MAX_LENGTH = 200


def public_agencies():
    """Agencies that lead or support at least one published recommendation, themselves or
    through a sub-agency."""
    return Agency.objects.owning(Ownership.objects.public())


def attach_recommendations(evidence_items):
    """Give each piece of public evidence `public_recommendations`: the published
    recommendations it bears on (linked to it, or whose history cites it), in document order.
    Two queries, whatever the number of items."""
    evidence_items = list(evidence_items)
    ids = [evidence.pk for evidence in evidence_items]
    published = Recommendation.objects.public()
    linked = Evidence.recommendations.through.objects.filter(
        evidence_id__in=ids, recommendation__in=published
    ).values_list("evidence_id", "recommendation_id")
    cited = CitedEvidence.objects.filter(
        evidence_id__in=ids, status_change__in=StatusChange.objects.public()
    ).values_list("evidence_id", "status_change__recommendation_id")
    bears_on = defaultdict(set)  # evidence id -> recommendation ids
    for evidence_id, recommendation_id in linked.union(cited) if ids else ():
        bears_on[evidence_id].add(recommendation_id)
    wanted = set().union(*bears_on.values())
    by_id = published.select_related("document").in_bulk(wanted) if wanted else {}
    for evidence in evidence_items:
        evidence.public_recommendations = sorted(
            (by_id[pk] for pk in bears_on[evidence.pk]),
            key=lambda rec: (rec.document_id, rec.position, rec.code),
        )
    return evidence_items


def last_change():
    """When a document, recommendation (drafts included) or piece of evidence last changed.
    A new status change counts: recording one saves its recommendation. Three queries."""
    moments = [
        model.objects.aggregate(latest=Max("updated_at"))["latest"]
        for model in (Document, Recommendation, Evidence)
    ]
    return max(filter(None, moments), default=None)


def recent_status_changes(*, limit):
    return (
        StatusChange.objects.public()
        .select_related("recommendation__document")
        .latest_first()[:limit]
    )


def recent_evidence(*, limit):
    return Evidence.objects.public().order_by("-created_at", "-pk")[:limit]


def kept_copies(evidence_items):
    """Return {evidence id: SourceVersion}: the kept copy of the page each piece of evidence
    quotes, as it read when the evidence was recorded. At most four queries.

    1. Evidence accepted from a change alert cites that alert's version exactly.
    2. Otherwise the page is a watched source linked to the evidence (accepting a feed entry
       or watching evidence URLs links them), or whose URL is the evidence's URL; the copy is
       the latest version kept by the time the evidence was recorded, else the first after.
    Feeds are not pages: their versions are never offered as copies.
    """
    evidence_items = list(evidence_items)
    by_id = {evidence.pk: evidence for evidence in evidence_items}
    copies = {}
    alerts = (
        ChangeAlert.objects.filter(evidence__in=list(by_id))
        .select_related("version")
        .defer("version__text")
        .order_by("created_at", "pk")
    )
    for alert in alerts:
        copies.setdefault(alert.evidence_id, alert.version)
    remaining = [evidence for evidence in evidence_items if evidence.pk not in copies]
    if not remaining:
        return copies

    sources_of = defaultdict(list)  # evidence id -> source ids, the one at its URL first
    pages = Source.objects.filter(kind=Source.Kind.PAGE)
    urls = {evidence.url for evidence in remaining if evidence.url}
    source_at = dict(pages.filter(url__in=urls).values_list("url", "pk")) if urls else {}
    for evidence in remaining:
        if evidence.url in source_at:
            sources_of[evidence.pk].append(source_at[evidence.url])
    links = Source.evidence.through.objects.filter(
        evidence_id__in=[evidence.pk for evidence in remaining], source__kind=Source.Kind.PAGE
    ).values_list("evidence_id", "source_id")
    for evidence_id, source_id in links:
        if source_id not in sources_of[evidence_id]:
            sources_of[evidence_id].append(source_id)

    source_ids = {pk for ids in sources_of.values() for pk in ids}
    versions = defaultdict(list)  # source id -> versions, oldest first
    for version in (
        SourceVersion.objects.filter(source_id__in=source_ids)
        .defer("text")
        .order_by("fetched_at", "pk")
    ):
        versions[version.source_id].append(version)
    for evidence in remaining:
        for source_id in sources_of[evidence.pk]:
            kept = versions[source_id]
            if kept:
                before = [v for v in kept if v.fetched_at <= evidence.created_at]
                copies[evidence.pk] = before[-1] if before else kept[0]
                break
    return copies


def evidence_citing(version):
    """Return the public evidence whose kept copy is `version`, oldest first (empty when
    the version is not public). At most six queries."""
    candidates = list(
        Evidence.objects.public()
        .filter(
            Q(alerts__version=version) | Q(sources=version.source_id) | Q(url=version.source.url)
        )
        .distinct()
        .order_by("created_at", "pk")
    )
    copies = kept_copies(candidates)
    return [evidence for evidence in candidates if copies.get(evidence.pk) == version]


def search_words(query):
    """Split a visitor's query into at most SEARCH_MAX_WORDS words (NUL characters, which
    PostgreSQL refuses, are dropped)."""
    query = query.replace("\x00", "")[:SEARCH_MAX_LENGTH]
    return query.split()[:SEARCH_MAX_WORDS]


def in_any_language(word, *fields):
    """A filter for rows with `word` in one of `fields`, in any content language's version
    (tracker/translation.py), so a search in Spanish finds an English text's translation."""
    found = Q()
    for field in fields:
        for code in CONTENT_LANGUAGES:
            found |= Q(**{f"{field}_{code}__icontains": word})
    return found


def search_recommendations(words):
    """Published recommendations containing every word in their code, section, or title, text
    or note in either language, in document order."""
    matches = Recommendation.objects.public().select_related("document")
    for word in words:
        matches = matches.filter(
            Q(code__icontains=word)
            | Q(section_title__icontains=word)
            | in_any_language(word, "title", "text", "note")
        )
    return matches[:SEARCH_LIMIT]


def search_evidence(words):
    """Public evidence containing every word in its outlet, or its title or quoted excerpt in
    either language."""
    matches = Evidence.objects.public()
    for word in words:
        matches = matches.filter(
            Q(outlet__icontains=word) | in_any_language(word, "title", "excerpt")
        )
    return matches.order_by("-published_on", "title")[:SEARCH_LIMIT]
