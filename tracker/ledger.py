"""The progress ledger: monthly counts by status per scope, kept up to date as history is
written, so that a progress series sums a small table instead of replaying the history.

A scope is what the progress series can be asked for: everything, one document, one agency
with its sub-agencies, or one theme, each as the public sees it or as staff who see drafts
do. For each scope the ledger keeps

- ProgressShare: for each recommendation the scope tracks, whether it is a member (counted by
  status), a root (progress averages the roots), and its share of its roots' progress (see
  progress.leaf_factors, here without the division by the number of roots, which is left to
  the read so that one document's shares never depend on another's);
- ProgressDelta: per month and status, the change in the members' count and in the shares
  held in that status. A running sum gives the state at each month's end.

Both are sums over recommendations of share times the recommendation's status events (the
days a status starts and stops, a later record winning a same-day tie), so:

1. recording a status change (Recommendation.record_status sends `status_changed` inside its
   transaction) adds the change's events times the recommendation's stored shares;
2. a change of structure (parents, weights, publication, withdrawal, owners, themes, the
   agency tree) marks the document stale in the same transaction; the next read refreshes
   stale documents: it recomputes their shares and adds (new share - old share) times the
   events, so the ledger never depends on how it was reached;
3. `rebuild_progress` recomputes everything from the history (after bulk loads and restores).

progress.progress_series stays the reference: the ledger must say exactly what it says.
"""

from collections import defaultdict

from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Count, Q

from .models import (
    Agency,
    Ownership,
    ProgressDelta,
    ProgressScope,
    ProgressShare,
    ProgressStale,
    Recommendation,
    StatusChange,
    Theme,
)
from .progress import _accumulate, leaf_shares, period_end_of, period_ends

# Who a scope's series is for: the public, or staff who see drafts (models.sees_drafts).
VISIBILITIES = ("public", "staff")
# The intervals the ledger answers: its rows are monthly, and years end with a month.
LEDGER_INTERVALS = ("month", "year")
# The recommendation fields whose change moves shares (a status change is recorded apart).
STRUCTURE_FIELDS = frozenset({"parent", "weight", "is_published", "withdrawn_at", "document"})
# Rows sent in one INSERT.
BATCH = 500


def scope_key(*, staff, document=None, agency=None, theme=None):
    """Return the ledger's key for a series filtered by at most one of document, agency and
    theme (ids), or None for a combination the ledger does not keep."""
    visibility = "staff" if staff else "public"
    given = [(name, pk) for name, pk in (("document", document), ("agency", agency),
                                          ("theme", theme)) if pk is not None]  # fmt: skip
    if not given:
        return f"{visibility}:all"
    if len(given) > 1:
        return None
    name, pk = given[0]
    return f"{visibility}:{name}:{pk}"


def status_events(history):
    """Return {(day, status): +1 or -1} for one recommendation's `history` of (effective on,
    status), oldest first and a later record last: the day each status starts and stops."""
    end_of_day = {}
    for day, status in history:
        end_of_day[day] = status  # the later record wins a same-day tie
    events, previous = {}, None
    for day in sorted(end_of_day):
        status = end_of_day[day]
        if status == previous:
            continue
        if previous is not None:
            events[day, previous] = events.get((day, previous), 0) - 1
        events[day, status] = events.get((day, status), 0) + 1
        previous = status
    return events


def _histories(recommendation_ids):
    """Return {recommendation id: [(effective on, status)] oldest first}, one query."""
    histories = defaultdict(list)
    changes = (
        StatusChange.objects.filter(recommendation_id__in=recommendation_ids)
        .order_by("recommendation_id", "effective_on", "recorded_at", "pk")
        .values_list("recommendation_id", "effective_on", "status")
    )
    for pk, effective_on, status in changes.iterator(chunk_size=5000):
        histories[pk].append((effective_on, status))
    return histories


def _agency_lines():
    """Return {agency id: [its id and the ids of every agency above it]}, one query."""
    parent_of = dict(Agency.objects.values_list("pk", "parent_id"))
    lines = {}
    for pk in parent_of:
        line, current = [], pk
        while current is not None and current not in line:
            line.append(current)
            current = parent_of.get(current)
        lines[pk] = line
    return lines


def _shares_in_tree(members, parent_of, weight_of, children):
    """Return {id: share} for the leaves under `members`' roots in one document's tree (the
    roots are members whose parent is not a member), as progress.leaf_factors computes them
    without dividing by the number of roots; and the set of roots."""
    roots = [pk for pk in members if parent_of.get(pk) not in members]
    return leaf_shares(roots, children, weight_of, root_share=1.0), set(roots)


def document_shares(document_ids):
    """Return {(scope, recommendation id): (document id, counted, root, share)} for every
    scope the recommendations of `document_ids` count in, as the structure stands. Six
    queries."""
    recommendations = Recommendation.objects.filter(document_id__in=document_ids)
    rows = list(recommendations.values_list("pk", "document_id", "parent_id", "weight"))
    ids = [row[0] for row in rows]
    # Who sees what: the models' one rule for drafts and withdrawals.
    visible = {
        "public": set(recommendations.public().values_list("pk", flat=True)),
        "staff": set(recommendations.current().values_list("pk", flat=True)),
    }
    lines = _agency_lines()
    owners = defaultdict(set)
    for pk, agency_id in Ownership.objects.filter(recommendation_id__in=ids).values_list(
        "recommendation_id", "agency_id"
    ):
        owners[pk].update(lines.get(agency_id, [agency_id]))
    themes = defaultdict(set)
    links = Recommendation.themes.through.objects.filter(recommendation_id__in=ids)
    for pk, theme_id in links.values_list("recommendation_id", "theme_id"):
        themes[pk].add(theme_id)
    by_document = defaultdict(list)
    for row in rows:
        by_document[row[1]].append(row)
    result = {}
    for document_id, document_rows in by_document.items():
        for visibility in VISIBILITIES:
            within = [row for row in document_rows if row[0] in visible[visibility]]
            parent_of = {row[0]: row[2] for row in within}
            weight_of = {row[0]: row[3] for row in within}
            children = defaultdict(list)
            for pk, parent_id in parent_of.items():
                if parent_id is not None:
                    children[parent_id].append(pk)
            scopes = defaultdict(set)
            for pk in parent_of:
                scopes[f"{visibility}:all"].add(pk)
                scopes[f"{visibility}:document:{document_id}"].add(pk)
                for agency_id in owners[pk]:
                    scopes[f"{visibility}:agency:{agency_id}"].add(pk)
                for theme_id in themes[pk]:
                    scopes[f"{visibility}:theme:{theme_id}"].add(pk)
            for scope, members in scopes.items():
                shares, roots = _shares_in_tree(members, parent_of, weight_of, children)
                for pk in members | set(shares):
                    result[scope, pk] = (
                        document_id,
                        pk in members,
                        pk in roots,
                        shares.get(pk, 0.0),
                    )
    return result


def _add_deltas(deltas, scope, events, counted, share):
    """Add `events` weighted by (counted, share) to `deltas`, by month end."""
    for (day, status), step in events.items():
        delta = deltas[scope, period_end_of("month", day), status]
        delta[0] += counted * step
        delta[1] += share * step


def _write_deltas(deltas):
    """Add `deltas` {(scope, month end, status): [count, share]} to the ledger's rows."""
    table = ProgressDelta._meta.db_table
    rows = [
        (scope, month_end, status, count, share)
        for (scope, month_end, status), (count, share) in deltas.items()
        if count or share
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(batch))
            cursor.execute(
                f"INSERT INTO {table} (scope, month_end, status, count, share) VALUES {values} "
                "ON CONFLICT (scope, month_end, status) DO UPDATE SET "
                f"count = {table}.count + excluded.count, share = {table}.share + excluded.share",
                [value for row in batch for value in row],
            )


def refresh_documents(document_ids):
    """Bring the shares of `document_ids`' recommendations in line with the structure, and
    the monthly rows with them; clear the documents' stale marks. Inside a transaction.

    1. Compute the shares as the structure stands; read the stored ones (those of the
       documents, and those of their recommendations filed under another document before a
       move).
    2. For each (scope, recommendation) whose share or membership changed, add the
       difference times the recommendation's status events to the monthly rows.
    3. Replace the changed shares.
    """
    document_ids = list(document_ids)
    if not document_ids:
        return
    # Wait for writers of these recommendations (record_status locks its row; a structural
    # save holds it too), so no change lands between the history read and the commit.
    recommendations = Recommendation.objects.filter(document_id__in=document_ids)
    list(recommendations.select_for_update().values_list("pk", flat=True))
    new = document_shares(document_ids)
    stored = ProgressShare.objects.filter(
        Q(document_id__in=document_ids)
        | Q(recommendation_id__in=Recommendation.objects.filter(document_id__in=document_ids))
    )
    old = {
        (scope, pk): (document_id, counted, root, share)
        for scope, pk, document_id, counted, root, share in stored.values_list(
            "scope", "recommendation_id", "document_id", "counted", "root", "share"
        )
    }
    changed = [key for key in new.keys() | old.keys() if new.get(key) != old.get(key)]
    histories = _histories({pk for _scope, pk in changed})
    deltas = defaultdict(lambda: [0, 0.0])
    nothing = (None, False, False, 0.0)
    for scope, pk in changed:
        _d, old_counted, _r, old_share = old.get((scope, pk), nothing)
        _d, new_counted, _r, new_share = new.get((scope, pk), nothing)
        counted = int(new_counted) - int(old_counted)
        share = new_share - old_share
        if counted or share:
            _add_deltas(deltas, scope, status_events(histories.get(pk, ())), counted, share)
    _write_deltas(deltas)
    for start in range(0, len(changed), BATCH):
        keys = [key for key in changed[start : start + BATCH] if key in old]
        if keys:
            condition = Q()
            for scope, pk in keys:
                condition |= Q(scope=scope, recommendation_id=pk)
            ProgressShare.objects.filter(condition).delete()
    ProgressShare.objects.bulk_create(
        (
            ProgressShare(
                scope=scope,
                recommendation_id=pk,
                document_id=new[scope, pk][0],
                counted=new[scope, pk][1],
                root=new[scope, pk][2],
                share=new[scope, pk][3],
            )
            for scope, pk in changed
            if (scope, pk) in new
        ),
        batch_size=BATCH,
    )
    _count_scopes({scope for scope, _pk in changed})
    ProgressStale.objects.filter(document_id__in=document_ids).delete()


def _count_scopes(scopes):
    """Store how many members and roots each of `scopes` has, from its shares."""
    totals = {scope: (0, 0) for scope in scopes}
    for start in range(0, len(scopes), BATCH):
        batch = sorted(scopes)[start : start + BATCH]
        counted = (
            ProgressShare.objects.filter(scope__in=batch)
            .values("scope")
            .annotate(
                members=Count("pk", filter=Q(counted=True)),
                roots=Count("pk", filter=Q(root=True)),
            )
            .values_list("scope", "members", "roots")
        )
        totals.update((scope, (members, roots)) for scope, members, roots in counted)
    ProgressScope.objects.bulk_create(
        (ProgressScope(scope=scope, members=m, roots=r) for scope, (m, r) in totals.items()),
        update_conflicts=True,
        unique_fields=["scope"],
        update_fields=["members", "roots"],
        batch_size=BATCH,
    )


def rebuild_ledger():
    """Recompute the whole ledger from the structure and the history, in one transaction."""
    from .models import Document

    with transaction.atomic():
        ProgressDelta.objects.all().delete()
        ProgressShare.objects.all().delete()
        ProgressScope.objects.all().delete()
        ProgressStale.objects.all().delete()
        document_ids = list(Document.objects.values_list("pk", flat=True))
        refresh_documents(document_ids)


def record_change(change):
    """Add a newly recorded status change to the ledger (inside record_status's
    transaction): the recommendation's events with it, less its events without it, times
    each of its stored shares. Two queries: the history, and one INSERT ... SELECT that
    multiplies the events by the shares in the database."""
    history = list(
        StatusChange.objects.filter(recommendation_id=change.recommendation_id)
        .order_by("effective_on", "recorded_at", "pk")
        .values_list("pk", "effective_on", "status")
    )
    after = status_events([(day, status) for _pk, day, status in history])
    before = status_events([(day, status) for pk, day, status in history if pk != change.pk])
    steps = defaultdict(int)
    for key in after.keys() | before.keys():
        day, status = key
        steps[period_end_of("month", day), status] += after.get(key, 0) - before.get(key, 0)
    steps = [(month_end, status, step) for (month_end, status), step in steps.items() if step]
    if not steps:
        return
    delta, share = ProgressDelta._meta.db_table, ProgressShare._meta.db_table
    values = ", ".join(["(%s, %s, %s)"] * len(steps))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH steps (month_end, status, step) AS (VALUES {values}) "
            f"INSERT INTO {delta} (scope, month_end, status, count, share) "
            "SELECT held.scope, steps.month_end, steps.status, "
            "SUM(CASE WHEN held.counted THEN steps.step ELSE 0 END), SUM(held.share * steps.step) "
            f"FROM {share} AS held, steps WHERE held.recommendation_id = %s "
            "GROUP BY held.scope, steps.month_end, steps.status "
            "ON CONFLICT (scope, month_end, status) DO UPDATE SET "
            f"count = {delta}.count + excluded.count, share = {delta}.share + excluded.share",
            [value for row in steps for value in row] + [change.recommendation_id],
        )


def mark_stale(document_ids):
    """Note that these documents' structure changed: the next read refreshes their shares.
    One query."""
    document_ids = {pk for pk in document_ids if pk is not None}
    ProgressStale.objects.bulk_create(
        (ProgressStale(document_id=pk) for pk in document_ids), ignore_conflicts=True
    )


def refresh_stale():
    """Refresh the documents marked stale, if any (one query when there are none). Readers
    wait for one another here, so a document is refreshed once."""
    if not ProgressStale.objects.exists():
        return
    with transaction.atomic():
        stale = list(
            ProgressStale.objects.select_for_update().values_list("document_id", flat=True)
        )
        refresh_documents(stale)


def _scope_totals(scope):
    """Return (whether any document is stale, members, roots) of `scope`, in one query."""
    stale, scopes = ProgressStale._meta.db_table, ProgressScope._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {stale}), "
            f"(SELECT members FROM {scopes} WHERE scope = %s), "
            f"(SELECT roots FROM {scopes} WHERE scope = %s)",
            [scope, scope],
        )
        is_stale, members, roots = cursor.fetchone()
    return bool(is_stale), members or 0, roots or 0


def ledger_series(scope, *, interval, start, end):
    """Return the progress series of `scope` (see scope_key) as progress.progress_series
    would for the same recommendations, from the ledger: two queries when nothing is stale,
    and rows in the number of months, not of changes."""
    if interval not in LEDGER_INTERVALS:
        raise ValueError(f"the ledger keeps months and years, not {interval}s")
    stale, members, roots = _scope_totals(scope)
    if stale:
        refresh_stale()
        stale, members, roots = _scope_totals(scope)
    ends = period_ends(interval, start, end)
    rows = (
        ProgressDelta.objects.filter(scope=scope, month_end__lte=ends[-1])
        .values_list("month_end", "status", "count", "share")
        .order_by()
    )
    deltas = defaultdict(lambda: [0, 0.0])
    for month_end, status, count, share in rows:
        period = month_end if interval == "month" else period_end_of(interval, month_end)
        delta = deltas[period, status]
        delta[0] += count
        delta[1] += share / roots if roots else 0.0
    return _accumulate(ends, deltas, member_count=members)


def status_recorded(sender, change, **kwargs):
    record_change(change)


def recommendation_saved(sender, instance, created, update_fields=None, raw=False, **kwargs):
    """Mark the document stale when a recommendation's structure may have changed (not when
    record_status saves its status fields)."""
    if raw:
        return  # a restore rebuilds the ledger when it is done
    if not created and update_fields and not STRUCTURE_FIELDS & set(update_fields):
        return
    mark_stale([instance.document_id])


def recommendations_updated(sender, rows, fields, **kwargs):
    """Mark stale the documents of recommendations an admin action updated in bulk."""
    if sender is Recommendation and STRUCTURE_FIELDS & set(fields):
        mark_stale({row.document_id for row in rows})


def recommendation_deleted(sender, instance, **kwargs):
    mark_stale([instance.document_id])


def ownership_changed(sender, instance, raw=False, **kwargs):
    if raw:
        return
    document_id = (
        Recommendation.objects.filter(pk=instance.recommendation_id)
        .values_list("document_id", flat=True)
        .first()
    )
    mark_stale([document_id])


def themes_changed(sender, instance, action, reverse, pk_set, **kwargs):
    """Mark stale the documents whose recommendations gained or lost a theme."""
    if not reverse:
        if action in ("post_add", "post_remove", "post_clear"):
            mark_stale([instance.document_id])
        return
    if action == "pre_clear":  # afterwards nothing says which recommendations had it
        recommendations = Recommendation.objects.filter(themes=instance)
    elif action in ("post_add", "post_remove"):
        recommendations = Recommendation.objects.filter(pk__in=pk_set)
    else:
        return
    mark_stale(set(recommendations.values_list("document_id", flat=True)))


def agency_saved(sender, instance, created, raw=False, **kwargs):
    """An agency moved in the tree changes what its ancestors count: mark stale the
    documents of what it and its sub-agencies own."""
    if raw or created:
        return
    family = Agency.objects.families([instance.pk])[instance.pk]
    documents = Recommendation.objects.filter(ownerships__agency__in=family)
    mark_stale(set(documents.values_list("document_id", flat=True)))


def theme_deleted(sender, instance, **kwargs):
    """A deleted theme's scopes can no longer be asked for: drop them."""
    scopes = [f"{visibility}:theme:{instance.pk}" for visibility in VISIBILITIES]
    for model in (ProgressShare, ProgressDelta, ProgressScope):
        model.objects.filter(scope__in=scopes).delete()


def fill_after_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs):
    """Refresh the documents a migration marked stale (the ledger's own migration marks them
    all), so an upgraded database has its ledger before the first read asks for it."""
    if using != DEFAULT_DB_ALIAS:
        return
    if ProgressStale._meta.db_table not in connection.introspection.table_names():
        return  # migrated back to before the ledger
    refresh_stale()


def connect_ledger(app_config):
    """Keep the ledger in step with every write (from TrackerConfig.ready)."""
    from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save

    from .audit import rows_updated
    from .models import status_changed

    status_changed.connect(status_recorded, dispatch_uid="ledger-status-change")
    post_save.connect(recommendation_saved, sender=Recommendation, dispatch_uid="ledger-rec")
    rows_updated.connect(recommendations_updated, dispatch_uid="ledger-rec-bulk")
    post_delete.connect(
        recommendation_deleted, sender=Recommendation, dispatch_uid="ledger-rec-del"
    )
    post_save.connect(ownership_changed, sender=Ownership, dispatch_uid="ledger-owner")
    post_delete.connect(ownership_changed, sender=Ownership, dispatch_uid="ledger-owner-del")
    m2m_changed.connect(
        themes_changed, sender=Recommendation.themes.through, dispatch_uid="ledger-themes"
    )
    post_save.connect(agency_saved, sender=Agency, dispatch_uid="ledger-agency")
    post_delete.connect(theme_deleted, sender=Theme, dispatch_uid="ledger-theme-del")
    post_migrate.connect(fill_after_migrate, sender=app_config, dispatch_uid="ledger-migrate")
