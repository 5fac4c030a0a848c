"""Mail Tracker sends: `make_message` renders templates/tracker/emails/<name>-subject.txt,
-body-text.txt and -body-html.html; one small function per email. Links are absolute, on
TRACKER_BASE_URL, and each message is rendered in its subscriber's language."""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from .labels import EFFECT_LABELS, STATUS_LABELS
from .models import Recommendation

# Characters of a progress bar in the plain-text part.
TEXT_BAR_WIDTH = 20


def absolute_url(path):
    return settings.TRACKER_BASE_URL + path


def make_message(name, to, context, *, headers=None):
    """Return an EmailMultiAlternatives to `to` (one address): subject, plain text and an
    HTML alternative rendered from the `name` templates with `context`."""
    subject = render_to_string(f"tracker/emails/{name}-subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),  # one line, whatever the template's whitespace
        body=render_to_string(f"tracker/emails/{name}-body-text.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=headers,
    )
    message.attach_alternative(
        render_to_string(f"tracker/emails/{name}-body-html.html", context), "text/html"
    )
    return message


def confirmation_message(subscription, links):
    with translation.override(subscription.language):
        context = {
            "subscription": subscription,
            "home_url": absolute_url(reverse("public:home")),
            **links,
        }
        return make_message("confirmation", subscription.email, context)


def digest_message(digest, links):
    """The digest mail, with one-click unsubscribe headers (RFC 8058) and its own
    Message-ID, kept on the delivery."""
    subscription = digest.subscription
    headers = {
        "List-Unsubscribe": f"<{links['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Message-ID": make_msgid(domain=DNS_NAME),
    }
    with translation.override(subscription.language):
        context = {
            "digest": digest,
            "period": digest.period,
            "weekly": "-W" in digest.period.key,
            "changes": [describe_change(change) for change in digest.changes],
            "evidence": [describe_evidence(item) for item in digest.evidence],
            "documents": [progress_row(doc, summary) for doc, summary in digest.documents],
            "agencies": [progress_row(agency, summary) for agency, summary in digest.agencies],
            "staff_groups": [describe_staff_group(group) for group in digest.staff_groups],
            "home_url": absolute_url(reverse("public:home")),
            **links,
        }
        return make_message("digest", subscription.email, context, headers=headers)


def describe_change(change):
    recommendation = change.recommendation
    return {
        "code": recommendation.code,
        "title": recommendation.title,
        "url": absolute_url(recommendation.get_absolute_url()),
        "status": STATUS_LABELS[change.status],
        "effective_on": change.effective_on,
        "rationale": change.rationale,
        "evidence": [evidence_link(item) for item in change.evidence.all()],
    }


def evidence_link(item):
    return {"title": item.title, "outlet": item.outlet, "url": item.url}


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


def progress_row(obj, summary):
    filled = round(summary.progress * TEXT_BAR_WIDTH)
    return {
        "name": str(obj),
        "url": absolute_url(obj.get_absolute_url()),
        "percent": summary.percent,
        "total": summary.total,
        "implemented": summary.counts[Recommendation.Status.IMPLEMENTED],
        "text_bar": "#" * filled + "-" * (TEXT_BAR_WIDTH - filled),
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
                "title": rec.title,
                "due_on": rec.review_due,
                "url": admin_url("recommendation", rec.pk),
            }
            for rec in group.overdue
        ],
    }
