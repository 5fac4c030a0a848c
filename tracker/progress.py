"""Status as of any date, and progress rolled up from recommendations to documents and agencies."""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from .models import STATUS_WEIGHTS, Ownership, Recommendation, StatusChange

Status = Recommendation.Status


def status_as_of(on, *, recommendations=None):
    """Return {recommendation id: status code} as the history stood at the end of day `on`.

    One query: the latest change effective on or before `on` per recommendation, ordered as
    the current status is (a later record with the same effective date is a correction).
    Recommendations with no change by then were not started.
    """
    if recommendations is None:
        recommendations = Recommendation.objects.all()
    latest = (
        StatusChange.objects.filter(recommendation=OuterRef("pk"), effective_on__lte=on)
        .latest_first()
        .values("status")[:1]
    )
    rows = recommendations.annotate(
        status_then=Coalesce(Subquery(latest), Value(Status.NOT_STARTED.value))
    ).values_list("pk", "status_then")
    return dict(rows)


@dataclass
class Progress:
    """How far a set of recommendations has come: counts by status and weighted progress."""

    counts: dict = field(default_factory=lambda: {status.value: 0 for status in Status})
    progress: float = 0.0

    @property
    def total(self):
        return sum(self.counts.values())

    @property
    def percent(self):
        return round(self.progress * 100)


def rolled_up_progress(nodes):
    """Return {id: progress in 0..1} for `nodes`, rows of (id, parent id, weight, status).

    A leaf's progress is its status weight; a parent's is the weighted average of its
    children's, whatever its own recorded status, so a parent is as far as its parts.
    """
    children = defaultdict(list)
    by_id = {}
    for node in nodes:
        pk, parent_id, _weight, _status = node
        by_id[pk] = node
        if parent_id is not None:
            children[parent_id].append(pk)

    progress = {}

    def progress_of(pk):
        if pk not in progress:
            kids = children.get(pk)
            if kids:
                total_weight = sum(by_id[kid][2] for kid in kids)
                weighted = sum(progress_of(kid) * by_id[kid][2] for kid in kids)
                progress[pk] = weighted / total_weight if total_weight else 0.0
            else:
                progress[pk] = STATUS_WEIGHTS[by_id[pk][3]]
        return progress[pk]

    for pk in by_id:
        progress_of(pk)
    return progress


def _summarise(rows, progress_by_id, members_by_key):
    summaries = {}
    statuses = {pk: status for pk, _parent, _weight, status in rows}
    for key, members in members_by_key.items():
        summary = Progress()
        for pk in members["counted"]:
            summary.counts[statuses[pk]] += 1
        scored = members["scored"]
        if scored:
            summary.progress = sum(progress_by_id[pk] for pk in scored) / len(scored)
        summaries[key] = summary
    return summaries


def _tree_rows(recommendations, on):
    fields = ("pk", "parent_id", "weight", "status", "document_id")
    rows = list(recommendations.values_list(*fields))
    if on is not None:
        then = status_as_of(on, recommendations=recommendations)
        rows = [(pk, parent, weight, then[pk], doc) for pk, parent, weight, _s, doc in rows]
    return rows


def progress_by_document(document_ids, *, on=None, published_only=False):
    """Return {document id: Progress} in two queries at most, whatever the number of documents.

    Counts include every recommendation; progress is the average of the top-level ones,
    each rolled up from its sub-recommendations.
    """
    recommendations = Recommendation.objects.filter(document_id__in=document_ids)
    if published_only:
        recommendations = recommendations.filter(is_published=True)
    rows = _tree_rows(recommendations, on)
    progress = rolled_up_progress([row[:4] for row in rows])
    members = {pk: {"counted": [], "scored": []} for pk in document_ids}
    for pk, parent_id, _weight, _status, document_id in rows:
        members[document_id]["counted"].append(pk)
        if parent_id is None:
            members[document_id]["scored"].append(pk)
    return _summarise([row[:4] for row in rows], progress, members)


def progress_by_agency(agency_ids, *, on=None, published_only=False):
    """Return {agency id: Progress} over the recommendations each agency leads or supports.

    Progress is the average of those recommendations' rolled-up progress. Three queries.
    """
    ownerships = Ownership.objects.filter(agency_id__in=agency_ids)
    if published_only:
        ownerships = ownerships.filter(recommendation__is_published=True)
    owned = list(
        ownerships.values_list("agency_id", "recommendation_id", "recommendation__document_id")
    )
    documents = {document_id for _agency, _rec, document_id in owned}
    recommendations = Recommendation.objects.filter(document_id__in=documents)
    if published_only:
        recommendations = recommendations.filter(is_published=True)
    rows = [row[:4] for row in _tree_rows(recommendations, on)]
    progress = rolled_up_progress(rows)
    members = {pk: {"counted": [], "scored": []} for pk in agency_ids}
    for agency_id, recommendation_id, _document_id in owned:
        members[agency_id]["counted"].append(recommendation_id)
        members[agency_id]["scored"].append(recommendation_id)
    return _summarise(rows, progress, members)


def progress_of_recommendation(recommendation, *, on=None):
    """Return one recommendation's progress in 0..1, rolled up from its sub-recommendations."""
    family = Recommendation.objects.filter(document_id=recommendation.document_id)
    rows = [row[:4] for row in _tree_rows(family, on)]
    return rolled_up_progress(rows)[recommendation.pk]
