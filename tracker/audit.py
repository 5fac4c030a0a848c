"""The audit trail: who created, changed or deleted what, and when (django-auditlog).

Staff writes through the admin and the API carry their user as the actor
(tracker.middleware.AuditActorMiddleware); Celery tasks and commands write as the system.
"""

from auditlog.registry import auditlog

from .models import Evidence, Ownership, Recommendation, Source, StatusChange

# Bookkeeping that changes on every save, and a source's monitoring state, which every check
# rewrites: logging those would bury the edits people make.
SOURCE_MONITORING_FIELDS = [
    "last_checked_at",
    "last_changed_at",
    "etag",
    "last_modified",
    "content_hash",
    "consecutive_failures",
    "last_error",
    "next_check_at",
]


def register_audited_models():
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
        exclude_fields=[*SOURCE_MONITORING_FIELDS, *reverse_relations(Source)],
        m2m_fields={"recommendations", "evidence"},
    )


def reverse_relations(model):
    """Names of the relations other models hold to this one: not this row's own data."""
    return [
        field.name
        for field in model._meta.get_fields()
        if field.auto_created and not field.concrete
    ]
