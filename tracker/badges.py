"""Embeddable SVG badges: a recommendation's status and a document's progress.

Shields-style flat badges, drawn from a template (which escapes every text) with text widths
measured by pybadges2's DejaVu Sans metrics. Only published recommendations have badges: they
are public images that shared caches keep, whoever asked first.
"""

import re

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from pybadges2.precalculated_text_measurer import PrecalculatedTextMeasurer

from .labels import status_label
from .models import Document, Recommendation
from .progress import progress_by_document, rollups_of
from .texts import reader_language, text_in
from .views import public_page, redirect_renumbered

Status = Recommendation.Status

# Horizontal padding around each half's text, in pixels (as shields.io).
PADDING = 10

# The label half's colour; each half's colour keeps white 11px text at a WCAG AA contrast.
LABEL_COLOR = "#555555"
STATUS_COLORS = {
    Status.NOT_ASSESSED: "#595959",
    Status.NOT_STARTED: "#616161",
    Status.IN_PROGRESS: "#1565c0",
    Status.PARTIAL: "#7a5c00",
    Status.IMPLEMENTED: "#2e7d32",
    Status.STALLED: "#a84a00",
    Status.REVERSED: "#c62828",
}

# Characters XML 1.0 forbids even escaped (C0 controls but tab, newline and return).
XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def text_width(text):
    """Return the width in pixels of `text` in 11px DejaVu Sans (the metrics are at 110)."""
    return PrecalculatedTextMeasurer.default().text_width(text) / 10


def render_badge(*, label, message, color, title, name="", name_lang=""):
    """Return a flat badge's SVG in the reader's language: `label` on grey, `message` on
    `color`, `title` as its text alternative. A `name` in another language than the reader's
    (a recommendation or document not translated yet) is left out of the title and given as
    its description, marked with `name_lang`. Every text is escaped by the template."""
    label, message, title, name = (
        XML_INVALID.sub("", text) for text in (label, message, title, name)
    )
    label_width = round(text_width(label)) + PADDING
    message_width = round(text_width(message)) + PADDING
    return render_to_string(
        "tracker/badge.svg",
        {
            "label": label,
            "message": message,
            "title": title,
            "lang": reader_language(),
            "name": name,
            "name_lang": name_lang,
            "color": color,
            "label_color": LABEL_COLOR,
            "label_width": label_width,
            "message_width": message_width,
            "width": label_width + message_width,
            # Text is drawn at ten times the size, scaled down, for finer positioning.
            "label_x": label_width * 5,
            "label_length": (label_width - PADDING) * 10,
            "message_x": label_width * 10 + message_width * 5,
            "message_length": (message_width - PADDING) * 10,
        },
    )


def progress_color(percent):
    if percent >= 100:
        return STATUS_COLORS[Status.IMPLEMENTED]
    if percent >= 50:
        return STATUS_COLORS[Status.PARTIAL]
    if percent > 0:
        return STATUS_COLORS[Status.IN_PROGRESS]
    return STATUS_COLORS[Status.NOT_STARTED]


def badge_response(svg):
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    # Opened directly rather than as an <img>, the SVG may still run nothing.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    # ConditionalGetMiddleware adds the ETag and answers If-None-Match with 304.
    return response


@public_page
def recommendation_badge(request, document, code):
    recommendation = (
        Recommendation.objects.public()
        .select_related("document")
        .filter(document__code=document, code=code)
        .first()
    )
    if recommendation is None:
        return redirect_renumbered("public:badge_recommendation", document, code)
    rollup = rollups_of([recommendation], within=Recommendation.objects.public()).get(
        recommendation.pk
    )
    shown = rollup.status if rollup else recommendation.status
    status = str(status_label(shown))
    name, name_lang = text_in(recommendation, "title")
    if name_lang == reader_language():
        title = _("%(code)s “%(title)s”: %(status)s") % {
            "code": recommendation.code,
            "title": name,
            "status": status,
        }
        name = ""
    else:
        title = _("%(code)s: %(status)s") % {"code": recommendation.code, "status": status}
    if rollup:
        title += " " + ngettext(
            "(%(moving)s of %(total)s sub-recommendation moving)",
            "(%(moving)s of %(total)s sub-recommendations moving)",
            rollup.total,
        ) % {"moving": rollup.moving, "total": rollup.total}
    verified = recommendation.last_verified_on
    if verified:
        title += _(" (last verified %(date)s)") % {"date": date_format(verified, "DATE_FORMAT")}
    else:
        title += _(" (not yet verified)")
    svg = render_badge(
        label=_("status"),
        message=status,
        color=STATUS_COLORS[shown],
        title=title,
        name=name,
        name_lang=name_lang,
    )
    return badge_response(svg)


@public_page
def document_badge(request, code):
    document = get_object_or_404(Document.objects.public(), code=code)
    summary = progress_by_document([document.pk], published_only=True)[document.pk]
    percent = summary.percent
    figures = {"percent": percent, "assessed": summary.assessed, "total": summary.total}
    name, name_lang = text_in(document, "title")
    if name_lang == reader_language():
        title = _(
            "%(code)s “%(title)s”: %(percent)s%% progress, %(assessed)s of %(total)s assessed"
        ) % {"code": document.code, "title": name, **figures}
        name = ""
    else:
        title = _("%(code)s: %(percent)s%% progress, %(assessed)s of %(total)s assessed") % {
            "code": document.code,
            **figures,
        }
    svg = render_badge(
        label=_("progress"),
        message=_("%(percent)s%%") % {"percent": percent},
        color=progress_color(percent),
        title=title,
        name=name,
        name_lang=name_lang,
    )
    return badge_response(svg)
