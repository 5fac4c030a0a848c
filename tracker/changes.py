"""What moved: the status changes that took effect in a date range, each with the status it
moved from and the evidence it cites. The public page, the admin's view and the API read it
here; who may see what is decided by the models' `visible_to` querysets."""

import datetime

from django.db.models import OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

from .models import Agency, Evidence, StatusChange

# The range the page shows when none is asked for: the last DEFAULT_DAYS days up to today.
DEFAULT_DAYS = 30


def default_range(*, today=None):
    """Return (start, end): DEFAULT_DAYS days before today, and today."""
    today = today or timezone.localdate()
    return today - datetime.timedelta(days=DEFAULT_DAYS), today


def with_previous_status(changes):
    """Annotate each change with `previous_status`: the status of the entry before it in its
    recommendation's history (history's order: effective date, then when recorded), or None
    for the first entry. One subquery, no extra query."""
    earlier = (
        Q(effective_on__lt=OuterRef("effective_on"))
        | Q(effective_on=OuterRef("effective_on"), recorded_at__lt=OuterRef("recorded_at"))
        | Q(
            effective_on=OuterRef("effective_on"),
            recorded_at=OuterRef("recorded_at"),
            pk__lt=OuterRef("pk"),
        )
    )
    previous = (
        StatusChange.objects.filter(earlier, recommendation=OuterRef("recommendation"))
        .latest_first()
        .values("status")[:1]
    )
    return changes.annotate(previous_status=Subquery(previous))


def status_changes_between(
    start, end, *, document=None, agency=None, theme=None, status=None, user=None
):
    """Return the status changes `user` may see (the public's when None) that took effect
    from `start` to `end`, both days included, latest first, as a queryset.

    Each change has `previous_status` (None for a recommendation's first entry), its
    recommendation and document (select_related) and the evidence it cites that `user` may
    see (prefetched, by title). `agency` includes its sub-agencies, in any role; `status` is
    the status moved to. Three queries for a page of them (the count, the page, the
    evidence), plus one per level of agencies under `agency`.
    """
    changes = StatusChange.objects.visible_to(user).filter(
        effective_on__gte=start, effective_on__lte=end
    )
    if document is not None:
        changes = changes.filter(recommendation__document=document)
    if agency is not None:
        family = Agency.objects.filter(pk=agency.pk).with_descendants()
        changes = changes.filter(recommendation__ownerships__agency__in=family)
    if theme is not None:
        changes = changes.filter(recommendation__themes=theme)
    if status:
        changes = changes.filter(status=status)
    if agency is not None or theme is not None:
        # Several owners or themes of one recommendation would list its change twice.
        changes = changes.distinct()
    evidence = Evidence.objects.visible_to(user).order_by("title", "pk")
    return (
        with_previous_status(changes)
        .select_related("recommendation__document")
        .prefetch_related(Prefetch("evidence", queryset=evidence))
        .latest_first()
    )
