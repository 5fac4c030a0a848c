"""Filters for the public pages: translated choice names and links that are safe to follow."""

from urllib.parse import urlsplit

from django import template

from .. import labels

register = template.Library()

# Only these schemes become links: an evidence URL saying "javascript:…" stays plain text.
LINK_SCHEMES = {"http", "https"}


@register.filter
def status_label(status):
    return labels.status_label(status)


@register.filter
def role_label(role):
    return labels.ROLE_LABELS.get(role, role)


@register.filter
def evidence_kind_label(kind):
    return labels.EVIDENCE_KIND_LABELS.get(kind, kind)


@register.filter
def effect_label(effect):
    return labels.EFFECT_LABELS.get(effect, effect)


@register.filter
def document_kind_label(kind):
    return labels.DOCUMENT_KIND_LABELS.get(kind, kind)


@register.filter
def agency_kind_label(kind):
    return labels.AGENCY_KIND_LABELS.get(kind, kind)


@register.filter
def link_url(url):
    """Return `url` if it is an http(s) address, else "" (the template then shows no link)."""
    try:
        scheme = urlsplit(url or "").scheme.lower()
    except ValueError:
        return ""
    return url if scheme in LINK_SCHEMES else ""


@register.filter
def get_item(mapping, key):
    return mapping.get(key)
