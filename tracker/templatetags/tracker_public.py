"""Filters for the public pages: translated choice names, links that are safe to follow, and
texts in the reader's language marked with their own where they fall back to it."""

from django import template
from django.template.defaultfilters import linebreaks_filter, linebreaksbr, truncatewords
from django.utils.html import conditional_escape, format_html

from .. import labels, links, texts

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


# How {% text %} lays a text out: a block of paragraphs, or a run of inline text.
TEXT_STYLES = {
    "": ("span", conditional_escape),
    "linebreaks": ("div", lambda value: linebreaks_filter(value, autoescape=True)),
    "linebreaksbr": ("span", lambda value: linebreaksbr(value, autoescape=True)),
    "excerpt": ("span", lambda value: conditional_escape(truncatewords(value, 60))),
}


@register.simple_tag
def text(obj, field, style=""):
    """`obj.field` in the page's language, else in its original one, wrapped in an element
    that says so (`<span lang="en">`): {% text recommendation "title" %},
    {% text recommendation "text" "linebreaks" %}."""
    value, language = texts.text_in(obj, field)
    return marked(value, language, style)


@register.simple_tag
def marked(value, language, style=""):
    """A text already read (a digest's), marked with its `language` where the page's differs."""
    if not value:
        return ""
    element, render = TEXT_STYLES[style]
    shown = render(value)
    if not language or language == texts.reader_language():
        return shown
    return format_html('<{0} lang="{1}">{2}</{0}>', element, language, shown)


@register.simple_tag
def lang_attr(language):
    """` lang="en"` when `language` is not the page's, for texts kept in one language."""
    if not language or language == texts.reader_language():
        return ""
    return format_html(' lang="{}"', language)
