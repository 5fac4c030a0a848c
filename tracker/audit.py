"""The audit trail: who created, changed or deleted what, and when (django-auditlog).

Staff writes through the admin and the API carry their user as the actor and their address
by tracker.clients.client_ip (AuditActorMiddleware); Celery tasks and commands write as the
system.
"""

import ipaddress

from auditlog.cid import get_cid
from auditlog.context import auditlog_value
from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from .caching import note_data_changed
from .clients import client_ip
from .models import CHECK_STATE_FIELDS, Evidence, Ownership, Recommendation, Source, StatusChange


def register_audited_models():
    # Not logged: bookkeeping that changes on every save, and a source's monitoring state.
    auditlog.register(
        Recommendation,
        exclude_fields=["updated_at", *reverse_relations(Recommendation)],
        m2m_fields={"themes"},
    )
    auditlog.register(Ownership)
    auditlog.register(
        StatusChange, exclude_fields=reverse_relations(StatusChange), m2m_fields={"evidence"}
    )
    auditlog.register(
        Evidence,
        exclude_fields=["updated_at", *reverse_relations(Evidence)],
        m2m_fields={"recommendations"},
    )
    auditlog.register(
        Source,
        exclude_fields=[*CHECK_STATE_FIELDS, *reverse_relations(Source)],
        m2m_fields={"recommendations", "evidence"},
    )


def reverse_relations(model):
    """Names of the relations other models hold to this one: not this row's own data."""
    return [
        field.name
        for field in model._meta.get_fields()
        if field.auto_created and not field.concrete
    ]


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
    content_type = ContentType.objects.get_for_model(queryset.model)
    LogEntry.objects.bulk_create(
        LogEntry(
            content_type=content_type,
            object_pk=str(row.pk),
            object_id=row.pk,
            object_repr=str(row),
            action=LogEntry.Action.UPDATE,
            changes={
                name: [str(getattr(row, name)), str(value)]
                for name, value in values.items()
                if getattr(row, name) != value
            },
            actor=actor,
            actor_email=getattr(actor, "email", None),
            # bulk_create sends no pre_save, through which auditlog adds these itself.
            **request_address(),
            cid=get_cid(),
            timestamp=now,
        )
        for row in rows
    )
    return len(rows)


def request_address():
    """The remote_addr and remote_port AuditActorMiddleware noted for the request being
    served (none outside a request)."""
    noted = auditlog_value.get({})
    return {name: noted.get(name) for name in ("remote_addr", "remote_port")}


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
