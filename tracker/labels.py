"""Translatable names for the models' choices, for the public pages and the digests.

The models' choice labels stay plain strings (the admin, the API and the migrations rely on
them); public text looks its label up here, so it follows the visitor's language. A status
has one text, the model's (marked with gettext_noop), so the admin and the public cannot drift.
"""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .models import Agency, Document, Evidence, Ownership, Recommendation

Status = Recommendation.Status

# The statuses' own labels (marked for translation in the model), translated.
STATUS_LABELS = {status: _(status.label) for status in Status}

ROLE_LABELS = {
    Ownership.Role.LEAD: pgettext_lazy("agency role", "Lead"),
    Ownership.Role.SUPPORTING: pgettext_lazy("agency role", "Supporting"),
}

EVIDENCE_KIND_LABELS = {
    Evidence.Kind.NEWS_REPORT: _("News report"),
    Evidence.Kind.OFFICIAL_ANNOUNCEMENT: _("Official announcement"),
    Evidence.Kind.PROPOSED_RULE: _("Proposed rule"),
    Evidence.Kind.FINAL_RULE: _("Final rule"),
    Evidence.Kind.GUIDANCE: _("Guidance"),
    Evidence.Kind.FUNDING: _("Funding"),
    Evidence.Kind.LEGISLATION: _("Legislation"),
    Evidence.Kind.LITIGATION: _("Litigation"),
    Evidence.Kind.STATEMENT: _("Statement"),
}

EFFECT_LABELS = {
    Evidence.Effect.ADVANCES: _("Advances"),
    Evidence.Effect.SETBACK: _("Setback"),
    Evidence.Effect.CONTEXT: _("Context"),
}

DOCUMENT_KIND_LABELS = {
    Document.Kind.REPORT: _("Report"),
    Document.Kind.BRIEF: _("Policy brief"),
    Document.Kind.OP_ED: _("Op-ed"),
    Document.Kind.LETTER: _("Letter"),
    Document.Kind.TESTIMONY: _("Testimony"),
}

AGENCY_KIND_LABELS = {
    Agency.Kind.US_GOVERNMENT: _("US government"),
    Agency.Kind.PARTNER: _("Partners: foreign governments and international organisations"),
}


def status_label(status):
    return STATUS_LABELS.get(status, status)
