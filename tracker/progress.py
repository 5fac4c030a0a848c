"""Status as of any date, and progress rolled up from recommendations to documents and agencies."""

import datetime
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import STATUS_WEIGHTS, Agency, Ownership, Recommendation, StatusChange

Status = Recommendation.Status


def status_as_of(on, *, recommendations=None, recorded_before=None):
    """Return {recommendation id: status code} as the history stood at the end of day `on`.

    One query: the latest change effective on or before `on` per recommendation, ordered as
    the current status is (a later record with the same effective date is a correction).
    Recommendations with no change by then were not yet assessed. With `recorded_before` (a
    moment), only what was recorded by then counts: the status the tracker showed then.
    """
    if recommendations is None:
        recommendations = Recommendation.objects.all()
    changes = StatusChange.objects.filter(recommendation=OuterRef("pk"), effective_on__lte=on)
    if recorded_before is not None:
        changes = changes.filter(recorded_at__lt=recorded_before)
    latest = changes.latest_first().values("status")[:1]
    rows = recommendations.annotate(
        status_then=Coalesce(Subquery(latest), Value(Status.NOT_ASSESSED.value))
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

    @property
    def not_assessed(self):
        return self.counts[Status.NOT_ASSESSED.value]

    @property
    def assessed(self):
        """How many staff have assessed (any recorded status, "not started" included)."""
        return self.total - self.not_assessed

    @property
    def implemented(self):
        return self.counts[Status.IMPLEMENTED.value]


def attach_progress(objects, summarise, *, published_only=False):
    """Give each of `objects` (documents or agencies) its `progress_summary`, computed for
    all at once by `summarise` (progress_by_document or progress_by_agency)."""
    summaries = summarise([obj.pk for obj in objects], published_only=published_only)
    for obj in objects:
        obj.progress_summary = summaries[obj.pk]
    return objects


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


# Statuses that say nothing has moved: "not started", and "not yet assessed" where the status
# vocabulary has it. A sub-recommendation in any other status is moving.
UNMOVED_STATUSES = frozenset({Status.NOT_STARTED.value, Status.NOT_ASSESSED.value})


@dataclass(frozen=True)
class Rollup:
    """What a parent's sub-recommendations say, and the status the parent shows for it."""

    total: int
    moving: int
    implemented: int
    status: str
    own_status: str

    @property
    def from_children(self):
        """Whether the status shown is the children's rather than the parent's own record."""
        return self.status != self.own_status


def roll_up(own_status, child_statuses):
    """Return the Rollup of a parent recorded as `own_status` with children in
    `child_statuses`: the one rule for what a parent shows.

    A parent keeps its own status unless its children contradict it: children that moved
    contradict "not started" (the parent is then in progress, or partially implemented once
    a child is partly or fully done), unfinished children contradict "implemented", and
    children all implemented make the parent implemented.
    """
    child_statuses = list(child_statuses)
    moving = [status for status in child_statuses if status not in UNMOVED_STATUSES]
    implemented = sum(status == Status.IMPLEMENTED for status in child_statuses)
    status = own_status
    if child_statuses and implemented == len(child_statuses):
        status = Status.IMPLEMENTED.value
    elif moving and (own_status in UNMOVED_STATUSES or own_status == Status.IMPLEMENTED):
        done = any(s in (Status.IMPLEMENTED, Status.PARTIAL) for s in moving)
        status = Status.PARTIAL.value if done else Status.IN_PROGRESS.value
    return Rollup(
        total=len(child_statuses),
        moving=len(moving),
        implemented=implemented,
        status=str(status),
        own_status=str(own_status),
    )


def rollups_of_tree(rows):
    """Return {id: Rollup} for each parent among `rows` of (id, parent id, status), from the
    bottom up: a child that is a parent counts with the status it shows."""
    status_of = {pk: status for pk, _parent, status in rows}
    children = defaultdict(list)
    for pk, parent_id, _status in rows:
        if parent_id in status_of:
            children[parent_id].append(pk)
    rollups = {}

    def shown_status(pk):
        if pk not in children:
            return status_of[pk]
        if pk not in rollups:
            rollups[pk] = roll_up(status_of[pk], [shown_status(kid) for kid in children[pk]])
        return rollups[pk].status

    for pk in children:
        shown_status(pk)
    return rollups


def rollups_among(recommendations):
    """Return {id: Rollup} for those of `recommendations` (a list, children included) that
    have children among them. No query."""
    return rollups_of_tree([(r.pk, r.parent_id, r.status) for r in recommendations])


def rollups_of(recommendations, *, within):
    """Return {id: Rollup} for those of `recommendations` with sub-recommendations among
    `within` (the public's recommendations, or those a user may see). One query."""
    documents = {recommendation.document_id for recommendation in recommendations}
    rows = within.filter(document_id__in=documents).values_list("pk", "parent_id", "status")
    rollups = rollups_of_tree(list(rows))
    return {r.pk: rollups[r.pk] for r in recommendations if r.pk in rollups}


def _summarise(rows, progress_by_id, members_by_key):
    summaries = {}
    statuses = {pk: status for pk, _parent, _weight, status in rows}
    # A parent counts under the status it shows (roll_up), as pages list it.
    tree = [(pk, parent_id, status) for pk, parent_id, _weight, status in rows]
    statuses.update((pk, rollup.status) for pk, rollup in rollups_of_tree(tree).items())
    for key, members in members_by_key.items():
        summary = Progress()
        for pk in members["counted"]:
            summary.counts[statuses[pk]] += 1
        scored = members["scored"]
        if scored:
            summary.progress = sum(progress_by_id[pk] for pk in scored) / len(scored)
        summaries[key] = summary
    return summaries


def _tree_rows(recommendations, on, recorded_before=None):
    fields = ("pk", "parent_id", "weight", "status", "document_id")
    rows = list(recommendations.values_list(*fields))
    if recorded_before is not None:
        # Nothing recorded by then took effect after its day (no change is future-dated).
        on = timezone.localdate(recorded_before)
    if on is not None:
        then = status_as_of(on, recommendations=recommendations, recorded_before=recorded_before)
        rows = [(pk, parent, weight, then[pk], doc) for pk, parent, weight, _s, doc in rows]
    return rows


def progress_by_document(document_ids, *, on=None, published_only=False, recorded_before=None):
    """Return {document id: Progress} in two queries at most, whatever the number of documents.

    Counts include every recommendation; progress is the average of the roots (top-level
    ones, and with `published_only` those whose parent is a draft), each rolled up from its
    sub-recommendations. `on` and `recorded_before` ask for it as of a past day, or as the
    tracker showed it at a past moment (see status_as_of).
    """
    recommendations = Recommendation.objects.current().filter(document_id__in=document_ids)
    if published_only:
        recommendations = recommendations.public()
    rows = _tree_rows(recommendations, on, recorded_before)
    progress = rolled_up_progress([row[:4] for row in rows])
    members = {pk: {"counted": [], "scored": []} for pk in document_ids}
    present = {row[0] for row in rows}
    for pk, parent_id, _weight, _status, document_id in rows:
        members[document_id]["counted"].append(pk)
        if parent_id not in present:  # a root: top-level, or under a draft the public can't see
            members[document_id]["scored"].append(pk)
    return _summarise([row[:4] for row in rows], progress, members)


def family_owners(agency_ids):
    """Return {agency id: [ids among `agency_ids` it counts for]}: each agency counts for
    itself and for every agency above it (Agency.objects.families). One query."""
    owners = defaultdict(list)
    for agency_id, family in Agency.objects.families(agency_ids).items():
        for member in family:
            owners[member].append(agency_id)
    return owners


def progress_by_agency(agency_ids, *, on=None, published_only=False, recorded_before=None):
    """Return {agency id: Progress} over the recommendations each agency, or an agency under
    it, leads or supports.

    Progress averages the roots of that set (what it owns whose parent it does not own),
    each rolled up from its sub-recommendations. Four queries. `on` and `recorded_before`
    as for progress_by_document.
    """
    owners = family_owners(agency_ids)
    ownerships = Ownership.objects.current().filter(agency_id__in=owners)
    if published_only:
        ownerships = ownerships.public()
    owned = list(
        ownerships.values_list("agency_id", "recommendation_id", "recommendation__document_id")
    )
    documents = {document_id for _agency, _rec, document_id in owned}
    recommendations = Recommendation.objects.current().filter(document_id__in=documents)
    if published_only:
        recommendations = recommendations.public()
    rows = [row[:4] for row in _tree_rows(recommendations, on, recorded_before)]
    progress = rolled_up_progress(rows)
    members = {pk: {"counted": [], "scored": []} for pk in agency_ids}
    parent_of = {row[0]: row[1] for row in rows}
    owned_by = defaultdict(set)
    for owner_id, recommendation_id, _document_id in owned:
        for agency_id in owners[owner_id]:
            owned_by[agency_id].add(recommendation_id)
    for agency_id, recommendation_ids in owned_by.items():
        members[agency_id]["counted"] = list(recommendation_ids)
        # Its roots: what it owns whose parent it does not own (as in progress_series).
        members[agency_id]["scored"] = [
            pk for pk in recommendation_ids if parent_of.get(pk) not in recommendation_ids
        ]
    return _summarise(rows, progress, members)


def progress_of_recommendation(recommendation, *, on=None):
    """Return one recommendation's progress in 0..1, rolled up from its sub-recommendations."""
    # Withdrawn recommendations count for nothing, but one of them still has its own progress.
    family = Recommendation.objects.current().filter(
        document_id=recommendation.document_id
    ) | Recommendation.objects.filter(pk=recommendation.pk)
    rows = [row[:4] for row in _tree_rows(family, on)]
    return rolled_up_progress(rows)[recommendation.pk]


# The intervals a progress series can be reported in.
INTERVALS = ("day", "week", "month", "year")


def period_end_of(interval, day):
    """Return the last day of the `interval` (day, week, month, year) holding `day`; weeks
    end on Sunday."""
    if interval == "day":
        return day
    if interval == "week":
        return day + datetime.timedelta(days=6 - day.weekday())
    if interval == "month":
        first_of_next = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
        return first_of_next - datetime.timedelta(days=1)
    if interval == "year":
        return datetime.date(day.year, 12, 31)
    raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")


def period_ends(interval, start, end):
    """Return the last day of each `interval` from the one holding `start` to the one holding
    `end`."""
    ends = [period_end_of(interval, start)]
    while ends[-1] < end:
        ends.append(period_end_of(interval, ends[-1] + datetime.timedelta(days=1)))
    return ends


def leaf_factors(recommendations, members, *, within=None):
    """Return {recommendation id: factor} such that the set's progress is the sum, over
    leaves, of factor times status weight.

    The set's progress averages its roots (members whose parent is not a member); a root's
    is the weighted average of its children's, down to the leaves, so each leaf under a root
    carries a fixed share of the whole: progress is linear in the leaves' status weights.
    One query, for the members' documents' recommendations among `within` (all by default;
    the public's progress must not count drafts' statuses).
    """
    family = (
        (within if within is not None else Recommendation.objects.all())
        .filter(document_id__in=recommendations.values("document_id"))
        .values_list("pk", "parent_id", "weight")
    )
    parent_of, weight_of, children = {}, {}, defaultdict(list)
    for pk, parent_id, weight in family:
        parent_of[pk], weight_of[pk] = parent_id, weight
        if parent_id is not None:
            children[parent_id].append(pk)
    roots = [pk for pk in members if parent_of.get(pk) not in members]
    return leaf_shares(roots, children, weight_of, root_share=1 / len(roots))


def leaf_shares(roots, children, weight_of, *, root_share):
    """Return {leaf id: share}: each root's `root_share` handed down its tree, each child
    taking its weight's part of its parent's."""
    shares = {}
    stack = [(root, root_share) for root in roots]
    while stack:
        pk, share = stack.pop()
        kids = children.get(pk)
        if not kids:
            # A leaf under two roots (a filter chose a grandparent and its grandchild) counts
            # for both.
            shares[pk] = shares.get(pk, 0.0) + share
            continue
        total = sum(weight_of[kid] for kid in kids)
        stack.extend((kid, share * weight_of[kid] / total) for kid in kids if total)
    return shares


def progress_series(recommendations, *, interval, start, end, within=None):
    """Return [{"period_end", "counts", "progress"}] for each period, as the history stood at
    the end of its last day, for the recommendations in `recommendations`.

    `progress` averages the set's roots (members whose parent is not a member), each rolled
    up from all its sub-recommendations. Each status a recommendation held, from its change
    to the next one (a later record wins a same-day tie, as in `status_as_of`), adds to the
    period it starts in and leaves in the period it ends in; summing those changes period by
    period gives the series. On PostgreSQL the database sums them in one query and returns
    one row per period and status; elsewhere the history is replayed here. The number of
    queries is fixed.
    """
    members = set(recommendations.values_list("pk", flat=True))
    factors = leaf_factors(recommendations, members, within=within) if members else {}
    tracked = members | set(factors)
    ends = period_ends(interval, start, end)
    # The last period is reported as at its last day, even when `end` falls before it.
    last = ends[-1]
    if connection.vendor == "postgresql":
        deltas = _period_deltas_in_sql(tracked, members, factors, interval=interval, end=last)
    else:
        deltas = _period_deltas_in_python(tracked, members, factors, interval=interval, end=last)
    return _accumulate(ends, deltas, member_count=len(members))


def _period_deltas_in_python(tracked, members, factors, *, interval, end):
    """Return {(period end, status): [count delta, progress delta]} by replaying history."""
    deltas = defaultdict(lambda: [0, 0.0])
    current = {}
    changes = (
        StatusChange.objects.filter(recommendation_id__in=tracked, effective_on__lte=end)
        .order_by("effective_on", "recorded_at", "pk")
        .values_list("recommendation_id", "effective_on", "status")
    )
    for pk, effective_on, status in changes:
        period = period_end_of(interval, effective_on)
        counted, share = int(pk in members), factors.get(pk, 0.0)
        if pk in current:
            delta = deltas[period, current[pk]]
            delta[0] -= counted
            delta[1] -= share
        delta = deltas[period, status]
        delta[0] += counted
        delta[1] += share
        current[pk] = status
    return deltas


# Each status held from one change to the next, as events on the days it starts and stops,
# summed by day and then by period; parameters: ids, shares, member flags, end date, then
# twice the interval for date_trunc.
_SERIES_SQL = """
WITH tracked AS (
    SELECT * FROM unnest(%s::bigint[], %s::float8[], %s::boolean[]) AS t(id, share, member)
),
held AS (
    SELECT tracked.member::int AS counted, tracked.share, change.status,
           change.effective_on AS starts,
           LEAD(change.effective_on) OVER (
               PARTITION BY change.recommendation_id
               ORDER BY change.effective_on, change.recorded_at, change.id
           ) AS stops
    FROM tracker_statuschange AS change
    JOIN tracked ON tracked.id = change.recommendation_id
    WHERE change.effective_on <= %s
),
events AS (
    SELECT status, starts AS day, counted, share FROM held
    WHERE stops IS NULL OR stops > starts
    UNION ALL
    SELECT status, stops, -counted, -share FROM held
    WHERE stops > starts
),
by_day AS (
    SELECT day, status, SUM(counted) AS counted, SUM(share) AS share FROM events
    GROUP BY day, status
)
SELECT (date_trunc(%s, day) + ('1 ' || %s)::interval - interval '1 day')::date,
       status, SUM(counted)::bigint, SUM(share)::float8
FROM by_day
GROUP BY 1, 2
"""


def _period_deltas_in_sql(tracked, members, factors, *, interval, end):
    """Return {(period end, status): [count delta, progress delta]}, summed by PostgreSQL."""
    ids = sorted(tracked)
    params = [
        ids,
        [factors.get(pk, 0.0) for pk in ids],
        [pk in members for pk in ids],
        end,
        interval,
        interval,
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        # The window sorts every change once: give it the memory to do so without disk.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")  # compiling costs more than this query saves
        cursor.execute(_SERIES_SQL, params)
        return {(period, status): [count, share] for period, status, count, share in cursor}


# Far above the error of summing floats in another order, far below a 4-digit step.
ROUNDING_NUDGE = 1e-9


def _accumulate(ends, deltas, *, member_count):
    """Turn per-period deltas into the state at each of `ends` (earlier ones carried in)."""
    held = {status.value: 0 for status in Status}
    share_by_status = {status.value: 0.0 for status in Status}
    pending = sorted(deltas.items())
    position = 0
    series = []
    for period_end in ends:
        while position < len(pending) and pending[position][0][0] <= period_end:
            (_period, status), (count, share) = pending[position]
            held[status] += count
            share_by_status[status] += share
            position += 1
        counts = dict(held)
        counts[Status.NOT_ASSESSED.value] += member_count - sum(held.values())
        progress = sum(share * STATUS_WEIGHTS[status] for status, share in share_by_status.items())
        progress = min(max(progress, 0.0), 1.0)
        series.append(
            {
                "period_end": period_end,
                "counts": counts,
                # Shares are fractions like 23/160, often exactly halfway between two
                # 4-digit values; the nudge rounds them up whatever order the floats were
                # summed in (the database's, the replay's, the ledger's).
                "progress": round(progress + ROUNDING_NUDGE, 4),
            }
        )
    return series


def months_later(day, months):
    """The same day `months` later, or that month's last day when it is shorter."""
    month_index = day.month - 1 + months
    first = datetime.date(day.year + month_index // 12, month_index % 12 + 1, 1)
    return first.replace(day=min(day.day, period_end_of("month", first).day))


def _histories(recommendations):
    """Return {recommendation id: [(effective_on, status), ...] oldest first}, one query."""
    histories = defaultdict(list)
    changes = (
        StatusChange.objects.filter(recommendation__in=recommendations)
        .order_by("effective_on", "recorded_at", "pk")
        .values_list("recommendation_id", "effective_on", "status")
    )
    for pk, effective_on, status in changes:
        histories[pk].append((effective_on, status))
    return histories


def _status_on(history, day):
    status = Status.NOT_ASSESSED.value
    for effective_on, new_status in history:
        if effective_on > day:
            break
        status = new_status
    return status


def implementation_curve(recommendations, *, months):
    """Return [{"months", "implemented", "share"}]: how many of the recommendations were
    implemented that many months after their document's publication, for months 0..`months`.

    Documents of different ages compare on the same scale; a recommendation counts at month
    m only if its document is at least m months old. Two queries.
    """
    published = dict(
        recommendations.filter(document__published_on__isnull=False).values_list(
            "pk", "document__published_on"
        )
    )
    histories = _histories(recommendations.filter(pk__in=published))
    today = timezone.localdate()
    curve = []
    for month in range(months + 1):
        eligible = implemented = 0
        for pk, published_on in published.items():
            day = months_later(published_on, month)
            if day > today:
                continue
            eligible += 1
            implemented += _status_on(histories[pk], day) == Status.IMPLEMENTED
        share = round(implemented / eligible, 4) if eligible else None
        curve.append(
            {"months": month, "eligible": eligible, "implemented": implemented, "share": share}
        )
    return curve


def agency_scorecards(agencies, *, published_only):
    """Return {agency id: scorecard}: counts by status of what it or an agency under it leads
    and of what they support without leading it, progress (None when nothing is assigned),
    and the median days from publication to first implementation of what it leads.
    Four queries and those of progress_by_agency, whatever the number of agencies."""
    owners = family_owners([agency.pk for agency in agencies])
    ownerships = Ownership.objects.current().filter(agency_id__in=owners)
    if published_only:
        ownerships = ownerships.public()
    rows = list(
        ownerships.values_list(
            "agency_id",
            "role",
            "recommendation_id",
            "recommendation__status",
            "recommendation__document__published_on",
        )
    )
    # A parent counts under the status it shows, as on the pages.
    within = Recommendation.objects.current()
    if published_only:
        within = within.public()
    family = within.filter(document__in=ownerships.values("recommendation__document"))
    shown = rollups_of_tree(list(family.values_list("pk", "parent_id", "status")))
    # Each recommendation once per agency: as lead if the agency or one under it leads it.
    held = defaultdict(dict)  # {agency id: {recommendation id: [role, status, published on]}}
    for owner_id, role, pk, status, published_on in rows:
        status = shown[pk].status if pk in shown else status
        for agency_id in owners[owner_id]:
            entry = held[agency_id].setdefault(pk, [role, status, published_on])
            if role == Ownership.Role.LEAD:
                entry[0] = role
    led = {pk for _a, role, pk, _s, _p in rows if role == Ownership.Role.LEAD}
    histories = _histories(Recommendation.objects.filter(pk__in=led))
    progress = progress_by_agency([agency.pk for agency in agencies], published_only=published_only)
    cards = {
        agency.pk: {
            "agency": agency,
            "lead": {status.value: 0 for status in Status},
            "supporting": {status.value: 0 for status in Status},
            "progress": progress[agency.pk].progress if held[agency.pk] else None,
            "days": [],
        }
        for agency in agencies
    }
    for agency_id, recommendations in held.items():
        card = cards[agency_id]
        for pk, (role, status, published_on) in recommendations.items():
            card[role][status] += 1
            if role != Ownership.Role.LEAD or published_on is None:
                continue
            implemented_on = next(
                (day for day, new in histories[pk] if new == Status.IMPLEMENTED), None
            )
            if implemented_on is not None and implemented_on >= published_on:
                card["days"].append((implemented_on - published_on).days)
    for card in cards.values():
        days = card.pop("days")
        card["implemented_count"] = len(days)
        card["median_days_to_implementation"] = statistics.median(days) if days else None
    return cards
