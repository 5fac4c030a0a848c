"""The staff's start page: what needs attention, gathered in a bounded number of queries.

Each part is read only for a user allowed to view it, and holds the total to act on, the
first few rows, and (where it groups) counts. The admin's index template links each row to
the place to act on it.
"""

from dataclasses import dataclass, field

from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from .models import (
    BROKEN_AFTER_FAILURES,
    Agency,
    ChangeAlert,
    DigestDelivery,
    FeedEntry,
    ImportProposal,
    Ownership,
    Recommendation,
    Source,
    StatusChange,
)
from .proposals import IMPORT_PERMISSIONS

# How many rows of each part the start page lists; the totals count them all.
SHOWN = 5
# How many changed lines of a change alert's diff the start page and the alert list preview.
PREVIEW_LINES = 4


@dataclass
class Part:
    """One part of the start page: `total` rows to act on, the first `rows` of them."""

    total: int = 0
    rows: list = field(default_factory=list)


@dataclass
class OverdueGroup:
    """Recommendations whose review is overdue under one lead agency (None: no lead)."""

    agency: Agency | None
    count: int


@dataclass
class Attention:
    """What needs attention, part by part; a part is None when the user may not see it."""

    alerts: Part | None = None
    feed_entries: Part | None = None
    proposals: Part | None = None
    overdue: list | None = None  # [OverdueGroup], lead agencies by name, no lead last
    broken_sources: Part | None = None
    failed_digests: Part | None = None
    latest_changes: list | None = None  # the latest status changes, newest first

    @property
    def is_quiet(self):
        """Whether nothing waits: the page then says so instead of listing empty parts."""
        parts = [self.alerts, self.feed_entries, self.proposals, self.broken_sources]
        parts.append(self.failed_digests)
        return not any(part and part.total for part in parts) and not self.overdue


def first_rows(queryset):
    """A Part of `queryset`: its count and its first SHOWN rows (two queries)."""
    return Part(total=queryset.count(), rows=list(queryset[:SHOWN]))


def changed_lines(diff, *, limit=PREVIEW_LINES, width=160):
    """The first `limit` lines a diff adds or removes, each cut to `width` characters."""
    lines = [
        line[:width]
        for line in diff.splitlines()
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    return lines[:limit]


def overdue_by_lead_agency(*, today=None):
    """[OverdueGroup] of current recommendations whose review is overdue, by lead agency
    (by name; no lead agency last). Three queries, whatever the number of recommendations."""
    lead = Ownership.objects.filter(recommendation=OuterRef("pk"), role=Ownership.Role.LEAD).values(
        "agency"
    )[:1]
    counts = dict(
        Recommendation.objects.current()
        .review_overdue(today=today)
        .annotate(lead=Subquery(lead))
        .order_by()
        .values("lead")
        .annotate(count=Count("pk"))
        .values_list("lead", "count")
    )
    agencies = Agency.objects.in_bulk([pk for pk in counts if pk is not None])
    groups = [OverdueGroup(agencies.get(pk), count) for pk, count in counts.items()]
    return sorted(groups, key=lambda g: (g.agency is None, g.agency and g.agency.name.lower()))


def needs_attention(user, *, today=None):
    """Return the Attention for `user`: the parts their permissions let them see. At most
    fifteen queries, however many rows wait."""
    today = today or timezone.localdate()
    attention = Attention()
    if user.has_perm("tracker.view_changealert"):
        alerts = ChangeAlert.objects.unreviewed().select_related("source").inbox_order()
        attention.alerts = first_rows(alerts)
        for alert in attention.alerts.rows:
            alert.preview = changed_lines(alert.diff)
    if user.has_perm("tracker.view_feedentry"):
        entries = FeedEntry.objects.filter(state=FeedEntry.State.NEW).select_related("source")
        attention.feed_entries = first_rows(entries.order_by("-seen_at", "-pk"))
    if user.has_perms(IMPORT_PERMISSIONS):
        pending = ImportProposal.objects.filter(state=ImportProposal.State.PENDING)
        attention.proposals = first_rows(pending.order_by("-created_at", "-pk"))
    if user.has_perm("tracker.view_recommendation"):
        attention.overdue = overdue_by_lead_agency(today=today)
    if user.has_perm("tracker.view_source"):
        broken = Source.objects.filter(
            is_active=True, consecutive_failures__gte=BROKEN_AFTER_FAILURES
        )
        attention.broken_sources = first_rows(broken.order_by("-consecutive_failures", "pk"))
    if user.has_perm("tracker.view_digestdelivery"):
        failed = DigestDelivery.objects.filter(state=DigestDelivery.State.FAILED)
        failed = failed.select_related("subscription").order_by("-created_at", "-pk")
        attention.failed_digests = first_rows(failed)
    if user.has_perm("tracker.view_statuschange"):
        changes = StatusChange.objects.select_related("recommendation", "recorded_by")
        attention.latest_changes = list(changes.order_by("-recorded_at", "-pk")[:SHOWN])
    return attention
