"""Status as of any date, and progress rolled up from recommendations to documents and agencies."""

import datetime
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


# The intervals a progress series can be reported in.
INTERVALS = ("day", "week", "month", "year")


def period_ends(interval, start, end):
    """Return the last day of each `interval` from the one holding `start` to the one holding
    `end`; weeks end on Sunday."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")
    ends = []
    day = start
    while True:
        if interval == "day":
            period_end = day
        elif interval == "week":
            period_end = day + datetime.timedelta(days=6 - day.weekday())
        elif interval == "month":
            period_end = last_day_of_month(day)
        else:
            period_end = datetime.date(day.year, 12, 31)
        ends.append(period_end)
        if period_end >= end:
            return ends
        day = period_end + datetime.timedelta(days=1)


def last_day_of_month(day):
    first_of_next = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    return first_of_next - datetime.timedelta(days=1)


def progress_series(recommendations, *, interval, start, end):
    """Return [{"period_end", "counts", "progress"}] for each period, as the history stood at
    the end of its last day, for the recommendations in `recommendations`.

    `progress` averages the set's roots (members whose parent is not a member), each rolled
    up from all its sub-recommendations. Three queries: the members, their families and the
    status changes. The history is then replayed once, oldest first (a later record wins a
    tie, as in `status_as_of`), keeping the counts and each root's rolled-up progress
    current, so the cost grows with the number of changes, not changes times periods.
    """
    members = set(recommendations.values_list("pk", flat=True))
    family = Recommendation.objects.filter(
        document_id__in=recommendations.values("document_id")
    ).values_list("pk", "parent_id", "weight")
    parent_of, weight_of, children = {}, {}, defaultdict(list)
    for pk, parent_id, weight in family:
        parent_of[pk], weight_of[pk] = parent_id, weight
        if parent_id is not None:
            children[parent_id].append(pk)
    roots = [pk for pk in members if parent_of.get(pk) not in members]

    status = dict.fromkeys(parent_of, Status.NOT_STARTED.value)
    progress = {pk: 0.0 for pk in parent_of}
    counts = {code.value: 0 for code in Status}
    counts[Status.NOT_STARTED.value] = len(members)
    root_set = set(roots)
    root_sum = 0.0

    def refresh(pk):
        """Recompute `pk`'s progress and its ancestors'; return the change to the roots' sum."""
        delta = 0.0
        while pk is not None:
            kids = children.get(pk)
            if kids:
                total = sum(weight_of[kid] for kid in kids)
                value = sum(progress[kid] * weight_of[kid] for kid in kids) / total if total else 0
            else:
                value = STATUS_WEIGHTS[status[pk]]
            if pk in root_set:
                delta += value - progress[pk]
            progress[pk] = value
            pk = parent_of[pk]
        return delta

    changes = (
        StatusChange.objects.filter(recommendation_id__in=parent_of, effective_on__lte=end)
        .order_by("effective_on", "recorded_at", "pk")
        .values_list("recommendation_id", "effective_on", "status")
        .iterator(chunk_size=5000)
    )
    pending = next(changes, None)
    series = []
    for period_end in period_ends(interval, start, end):
        while pending is not None and pending[1] <= period_end:
            pk, _effective_on, new_status = pending
            if pk in members:
                counts[status[pk]] -= 1
                counts[new_status] += 1
            status[pk] = new_status
            root_sum += refresh(pk)
            pending = next(changes, None)
        series.append(
            {
                "period_end": period_end,
                "counts": dict(counts),
                "progress": round(root_sum / len(roots), 4) if roots else 0.0,
            }
        )
    return series
