"""Mail Tracker sends: `make_message` renders templates/tracker/emails/<name>-subject.txt,
-body-text.txt and -body-html.html; one small function per email. Links are absolute, on
TRACKER_BASE_URL, and each message is rendered in its subscriber's language."""

import secrets
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.safestring import mark_safe

from . import texts
from .labels import EFFECT_LABELS, STATUS_LABELS
from .links import link_url

# Status changes, and pieces of new evidence, a digest lists; it counts the others and
# links to the site, so a busy week still makes a readable (and light) mail.
MAX_LISTED = 20
# Characters of a progress bar in the plain-text part.
TEXT_BAR_WIDTH = 20


def absolute_url(path):
    return settings.TRACKER_BASE_URL + path


def make_message(name, to, context, *, headers=None):
    """Return an EmailMultiAlternatives to `to` (one address): subject, plain text and an
    HTML alternative rendered from the `name` templates with `context`, to which the
    bodies' templates find the rendered subject added as `subject`."""
    return message_of(render_parts(name, context), to, headers=headers)


def render_parts(name, context):
    """Return (subject, plain text, HTML) rendered from the `name` templates."""
    subject = render_to_string(f"tracker/emails/{name}-subject.txt", context)
    subject = " ".join(subject.split())  # one line, whatever the template's whitespace
    context = {**context, "subject": subject}
    return (
        subject,
        render_to_string(f"tracker/emails/{name}-body-text.txt", context),
        render_to_string(f"tracker/emails/{name}-body-html.html", context),
    )


def message_of(parts, to, *, headers=None):
    subject, text, html = parts
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


def confirmation_message(subscription, links):
    return subscription_message("confirmation", subscription, links)


def already_subscribed_message(subscription, links):
    """To a confirmed address signed up again: nothing changed, and where to change it."""
    return subscription_message("already-subscribed", subscription, links)


def subscription_message(name, subscription, links):
    """A mail about the subscription itself, in its language, with its signed links."""
    with translation.override(subscription.language):
        context = {
            "subscription": subscription,
            "home_url": absolute_url(reverse("public:home")),
            **links,
        }
        return make_message(name, subscription.email, context)


@dataclass
class Fragments:
    """Rendered pieces of a digest section, joined: HTML and plain text."""

    html: str
    text: str

    def __bool__(self):
        return bool(self.text)


def digest_message(digest, links, *, rendered=None):
    """The digest mail, with one-click unsubscribe headers (RFC 8058) and its own
    Message-ID, kept on the delivery.

    Each status change, piece of evidence, progress bar and staff group is rendered once
    per language into `rendered` (a dict a whole run shares), since many subscribers'
    digests hold the same ones; each digest then only joins its pieces.
    """
    subscription = digest.subscription
    rendered = {} if rendered is None else rendered
    headers = {
        "List-Unsubscribe": f"<{links['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Message-ID": make_msgid(domain=DNS_NAME),
    }
    with translation.override(subscription.language):

        def section(fragment, items):
            pieces = [
                render_fragment(rendered, fragment, key, describe, subscription.language)
                for key, describe in items
            ]
            return Fragments(
                html=mark_safe("".join(html for html, _text in pieces)),  # rendered escaped
                text="".join(text for _html, text in pieces),
            )

        context = {
            "digest": digest,
            "period": digest.period,
            "weekly": "-W" in digest.period.key,
            "changes": section(
                "change",
                [(c.pk, partial(describe_change, c)) for c in digest.changes[:MAX_LISTED]],
            ),
            "more_changes": max(len(digest.changes) - MAX_LISTED, 0),
            "evidence": section(
                "evidence",
                [(e.pk, partial(describe_evidence, e)) for e in digest.evidence[:MAX_LISTED]],
            ),
            "more_evidence": max(len(digest.evidence) - MAX_LISTED, 0),
            "progress": section(
                "progress-row",
                [progress_item(digest, ("document", d.pk), d, p) for d, p in digest.documents]
                + [progress_item(digest, ("agency", a.pk), a, p) for a, p in digest.agencies],
            ),
            "staff_groups": section(
                "staff-group",
                [
                    (("staff", g.agency.pk if g.agency else None), partial(describe_staff_group, g))
                    for g in digest.staff_groups
                ],
            ),
            "home_url": absolute_url(reverse("public:home")),
            **LINK_PLACEHOLDERS,
        }
        # Subscribers who follow the same things over the same days get the same digest but
        # for their own links: it is rendered once, with stand-ins for those links.
        shared = (
            "digest",
            subscription.language,
            digest.period.key,
            day_of(digest.covered_from),
            day_of(digest.covered_until),
            digest.last_day,
            digest.effective_span,
            context["more_changes"],
            context["more_evidence"],
            *(
                (context[name].html, context[name].text)
                for name in ("changes", "evidence", "progress", "staff_groups")
            ),
        )
        if shared not in rendered:
            rendered[shared] = render_parts("digest", context)
        subject, text, html = rendered[shared]
        for name, placeholder in LINK_PLACEHOLDERS.items():
            text = text.replace(placeholder, links[name])
            html = html.replace(placeholder, escape(links[name]))
        return message_of((subject, text, html), subscription.email, headers=headers)


# Stand-ins for a subscriber's own links in a digest's shared rendering.
# Random, so that no text in a digest (a feed's headline) can be taken for one.
LINK_PLACEHOLDERS = {
    "preferences_url": f"tracker-preferences-{secrets.token_hex(16)}",
    "unsubscribe_url": f"tracker-unsubscribe-{secrets.token_hex(16)}",
}


def day_of(moment):
    """The day a digest template shows for `moment` (its `date` filter works in local time)."""
    return moment and timezone.localtime(moment).date()


# The context name each digest fragment template renders.
FRAGMENT_NAMES = {
    "change": "change",
    "evidence": "item",
    "progress-row": "row",
    "staff-group": "group",
}


def render_fragment(rendered, fragment, key, describe, language):
    """Return (html, text) of templates/tracker/emails/digest-<fragment>.html|.txt for the
    item `key`, rendering it (with the context `describe()` returns) once per language."""
    cache_key = (fragment, key, language)
    if cache_key not in rendered:
        context = {FRAGMENT_NAMES[fragment]: describe()}
        rendered[cache_key] = (
            render_to_string(f"tracker/emails/digest-{fragment}.html", context),
            render_to_string(f"tracker/emails/digest-{fragment}.txt", context),
        )
    return rendered[cache_key]


def describe_change(change):
    recommendation = change.recommendation
    previous = change.previous_status  # annotated by the digest run; None: the first one
    return {
        "code": recommendation.code,
        **shown_text(recommendation, "title"),
        "url": absolute_url(recommendation.get_absolute_url()),
        "previous_status": STATUS_LABELS[previous] if previous else None,
        "status": STATUS_LABELS[change.status],
        "effective_on": change.effective_on,
        # A change from before its document is background to it (Document.predates).
        "document_date": recommendation.document.published_on if change.predates_document else None,
        "last_verified_on": recommendation.last_verified_on,
        **shown_text(change, "rationale"),
        "evidence": [evidence_link(item) for item in cited_evidence(change)],
    }


def cited_evidence(change):
    """The evidence a change cites: prefetched as `cited` by a digest run."""
    return change.cited if hasattr(change, "cited") else change.evidence.all()


def evidence_link(item):
    # Both parts of the mail show the URL only if it may be a link (tracker/links.py).
    return {**shown_text(item, "title"), "outlet": item.outlet, "url": link_url(item.url)}


def shown_text(obj, field):
    """{field: the text in the mail's language or its original, field_lang: which}: the HTML
    part marks a fallback with its lang attribute (tracker/texts.py)."""
    value, language = texts.text_in(obj, field)
    return {field: value, f"{field}_lang": language}


def describe_evidence(item):
    return {
        **evidence_link(item),
        "published_on": item.published_on,
        "effect": EFFECT_LABELS[item.effect],
        "recommendations": [
            {"code": rec.code, "url": absolute_url(rec.get_absolute_url())}
            for rec in item.published
        ],
    }


def progress_item(digest, key, obj, summary):
    """(fragment key, describe) of a progress row, with its movement since the previous
    digest when there was one: rows are shared by the digests with the same movement."""
    before = digest.progress_before.get(key)
    if before is None:
        return key, partial(progress_row, obj, summary)
    since = digest.first_day
    return (*key, before.percent, since), partial(
        progress_row, obj, summary, before=before, since=since
    )


def progress_row(obj, summary, *, before=None, since=None):
    filled = round(summary.progress * TEXT_BAR_WIDTH)
    return {
        "name": str(obj),
        # An agency's name or a document's title: its language, where the mail's lacks it.
        "name_lang": texts.text_in(obj, "name" if hasattr(obj, "name_en") else "title")[1],
        "url": absolute_url(obj.get_absolute_url()),
        "percent": summary.percent,
        "total": summary.total,
        "implemented": summary.implemented,
        "assessed": summary.assessed,
        "text_bar": "#" * filled + "-" * (TEXT_BAR_WIDTH - filled),
        **(progress_delta(summary.percent, before.percent, since) if before else {}),
    }


def progress_delta(percent, before_percent, since):
    # In points of the percentages shown, so the arithmetic reads right in the mail.
    delta = percent - before_percent
    return {
        "before_percent": before_percent,
        "delta": delta,
        "points": abs(delta),
        "signed_delta": f"+{delta}" if delta >= 0 else f"\u2212{-delta}",  # a minus sign
        "since": since,
    }


def admin_url(name, pk):
    return absolute_url(reverse(f"admin:tracker_{name}_change", args=[pk]))


def describe_staff_group(group):
    return {
        "agency": str(group.agency) if group.agency else None,
        "alerts": [
            {
                "source": str(alert.source),
                "created_at": alert.created_at,
                "url": admin_url("changealert", alert.pk),
            }
            for alert in group.alerts
        ],
        "broken_sources": [
            {
                "source": str(source),
                "failures": source.consecutive_failures,
                "error": source.last_error,
                "url": admin_url("source", source.pk),
            }
            for source in group.broken_sources
        ],
        "overdue": [
            {
                "code": rec.code,
                **shown_text(rec, "title"),
                "due_on": rec.review_due_on,
                "url": admin_url("recommendation", rec.pk),
            }
            for rec in group.overdue
        ],
    }
