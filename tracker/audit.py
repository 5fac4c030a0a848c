"""The audit trail: who created, changed or deleted what, and when (django-auditlog).

Staff writes through the admin and the API carry their user as the actor and their address
by tracker.clients.client_ip (AuditActorMiddleware); Celery tasks and commands write as the
system.
"""

import ipaddress

from auditlog.cid import get_cid
from auditlog.diff import model_instance_diff
from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import pre_save
from django.dispatch import Signal
from django.utils import timezone
from django.utils.encoding import smart_str
from django.utils.functional import SimpleLazyObject

from .caching import note_data_changed
from .clients import client_ip


def register_audited_models():
    """Register the audited models with django-auditlog (from TrackerConfig.ready: the
    models use this module's entry writers, so it never imports them)."""
    Recommendation, Ownership, StatusChange, Evidence, Source = (
        apps.get_model("tracker", name)
        for name in ("Recommendation", "Ownership", "StatusChange", "Evidence", "Source")
    )
    auditlog.register(
        Recommendation,
        exclude_fields=[
            "updated_at",
            *reverse_relations(Recommendation),
            *translated_fields(Recommendation),
        ],
        m2m_fields={"themes"},
    )
    auditlog.register(Ownership)
    auditlog.register(
        StatusChange,
        exclude_fields=[*reverse_relations(StatusChange), *translated_fields(StatusChange)],
        m2m_fields={"evidence"},
    )
    auditlog.register(
        Evidence,
        exclude_fields=[
            "updated_at",
            *reverse_relations(Evidence),
            *translated_fields(Evidence),
        ],
        m2m_fields={"recommendations"},
    )
    auditlog.register(
        Source,
        exclude_fields=[*Source.check_state_fields, *reverse_relations(Source)],
        m2m_fields={"recommendations", "evidence"},
    )


def translated_fields(model):
    """The fields kept per language (tracker/translation.py): their `title_en`, `title_es`
    columns are logged, not the shared `title` that reads as the current language."""
    from modeltranslation.translator import NotRegistered, translator

    try:
        return list(translator.get_options_for_model(model).fields)
    except NotRegistered:
        return []


def reverse_relations(model):
    """Names of the relations other models hold to this one: not this row's own data."""
    return [
        field.name
        for field in model._meta.get_fields()
        if field.auto_created and not field.concrete
    ]


# Sent by update_with_audit with the model as sender, `rows` the rows changed (as they were)
# and `fields` the names set: what post_save receivers would have seen (the progress ledger
# listens).
rows_updated = Signal()


def update_with_audit(queryset, values, *, actor, unlogged=None):
    """Set `values` on the rows of `queryset` that differ, and log each changed row.

    QuerySet.update() sends no signals, so auditlog would not see a bulk change (an admin
    action over a page of rows): the rows that will change are read once, updated in one
    query, and their entries written in one more. `unlogged` values (updated_at) are set
    but not logged. Return the number of rows changed.
    """
    rows = list(queryset.exclude(**values))
    if not rows:
        return 0
    now = timezone.now()
    queryset.model.objects.filter(pk__in=[row.pk for row in rows]).update(
        **values, **(unlogged or {})
    )
    note_data_changed()  # cached reads: an update() sends no save signals either
    rows_updated.send(sender=queryset.model, rows=rows, fields=set(values))
    write_entries(
        [
            entry(
                row,
                action=LogEntry.Action.UPDATE,
                changes={
                    name: [str(getattr(row, name)), str(value)]
                    for name, value in values.items()
                    if getattr(row, name) != value
                },
            )
            for row in rows
        ],
        actor=actor,
        timestamp=now,
    )
    return len(rows)


def entry(instance, *, action, changes):
    """An unsaved log entry for `instance`, as django-auditlog would write it."""
    return LogEntry(
        content_type=ContentType.objects.get_for_model(instance),
        object_pk=str(instance.pk),
        object_id=instance.pk,
        object_repr=smart_str(instance),
        action=action,
        changes=changes,
    )


def diff_entry(old, new, *, fields=None):
    """The entry for saving `new` over `old` (None: creating it), limited to `fields`, in
    django-auditlog's own format and with its registered exclusions; None if nothing changed."""
    changes = model_instance_diff(old, new, fields_to_check=fields)
    if not changes:
        return None
    action = LogEntry.Action.CREATE if old is None else LogEntry.Action.UPDATE
    return entry(new, action=action, changes=changes)


def m2m_entry(instance, field_name, added):
    """The entry for adding the `added` objects to `instance`'s many-to-many `field_name`."""
    objects = [smart_str(item) for item in added]
    changes = {field_name: {"type": "m2m", "operation": "add", "objects": objects}}
    return entry(instance, action=LogEntry.Action.UPDATE, changes=changes)


def write_entries(entries, *, actor=None, timestamp=None):
    """Write `entries` (None ones skipped) in one query, by `actor`, else by the request
    being served.

    bulk_create sends no pre_save, through which django-auditlog's middleware stamps each
    entry with the request's actor and address: it is sent here for each entry instead (no
    receiver listens outside a request).
    """
    entries = [item for item in entries if item is not None]
    for item in entries:
        item.actor = actor
        item.actor_email = getattr(actor, "email", None)
        item.cid = get_cid()
        item.timestamp = timestamp or timezone.now()
        pre_save.send(
            sender=LogEntry, instance=item, raw=False, using="default", update_fields=None
        )
    LogEntry.objects.bulk_create(entries)


class AuditActorMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with the actor looked up when an entry is written (the
    API authenticates tokens inside the view, after every middleware has run, and then sets
    the user on the request), and the address by our one rule: auditlog's own takes the
    first X-Forwarded-For entry, which any client can write."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: signed_in_user(request))

    @staticmethod
    def _get_remote_addr(request):
        if settings.AUDITLOG_DISABLE_REMOTE_ADDR:
            return None
        address = client_ip(request)
        try:  # a proxy may forward something else ("unknown"), which the column refuses
            return str(ipaddress.ip_address(address))
        except ValueError:
            return None

    @staticmethod
    def _get_remote_port(request):
        """The client's port when it connects to us itself; X-Forwarded-Port names a
        proxy's port, not the client's, and without trusted proxies anyone writes it."""
        if settings.TRACKER_TRUSTED_PROXIES > 0:
            return None
        port = str(request.META.get("REMOTE_PORT", ""))
        return int(port) if port.isdecimal() else None


def signed_in_user(request):
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None
