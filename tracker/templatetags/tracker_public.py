"""Filters for the public pages: translated choice names and links that are safe to follow."""

from django import template

from .. import labels, links

register = template.Library()


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


# An evidence URL saying "javascript:…" stays plain text: the one rule, tracker/links.py.
register.filter("link_url", links.link_url)


@register.filter
def get_item(mapping, key):
    return mapping.get(key)
