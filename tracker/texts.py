"""Which language a text people read is in: the reader's, or the other one it falls back to.

The one rule for content languages (the columns come from tracker/translation.py): a text
is shown in the reader's language when staff gave it, else in the other language, where the
original is; a fallback is marked with its `lang` attribute wherever it is shown.
"""

from django.conf import settings
from django.db.models import Q
from django.utils import translation

# The content languages, in the order a missing text falls back through.
CONTENT_LANGUAGES = [code for code, _name in settings.LANGUAGES]
# For each reader's language, the languages a text is looked for in: theirs, then the others.
READING_ORDER = {
    wanted: [wanted, *(code for code in CONTENT_LANGUAGES if code != wanted)]
    for wanted in CONTENT_LANGUAGES
}
# The most rows of each kind the "Texts to translate" page lists.
TO_TRANSLATE_LIMIT = 200


def reader_language(language=None):
    """The content language for a request or UI language ("es-mx" → "es"; English else)."""
    code = (language or translation.get_language() or "en").lower().split("-")[0]
    return code if code in CONTENT_LANGUAGES else CONTENT_LANGUAGES[0]


def text_in(obj, field, language=None):
    """Return (text, language it is in) for `obj.field` read in `language` (the active
    one by default): the reader's language if given, else the first other language that has
    it; ("", reader's language) when no language has it."""
    wanted = reader_language(language)
    for code in READING_ORDER[wanted]:
        value = getattr(obj, f"{field}_{code}", None)
        if value:
            return value, code
    return "", wanted


def text_among(versions, language=None):
    """text_in for a text read as values, not from a model: `versions` is {language: text}."""
    wanted = reader_language(language)
    for code in READING_ORDER[wanted]:
        value = versions.get(code)
        if value:
            return value, code
    return "", wanted


def versions(obj, field):
    """{language: text} of `obj.field` in every content language ("" where missing)."""
    return {
        f"{field}_{code}": getattr(obj, f"{field}_{code}", None) or "" for code in CONTENT_LANGUAGES
    }


def recorded_language(obj, field):
    """The language `obj.field` was first given in: the first content language that has it."""
    for code in CONTENT_LANGUAGES:
        if getattr(obj, f"{field}_{code}", None):
            return code
    return None


def languages_of(obj, fields, language=None):
    """{field: language its shown text is in} for the texts of `obj` that have one."""
    languages = {}
    for field in fields:
        value, code = text_in(obj, field, language)
        if value:
            languages[field] = code
    return languages


def missing_translations(obj, fields):
    """[(field, language)] for each text of `obj` given in one language but not another."""
    missing = []
    for field in fields:
        present = {code for code in CONTENT_LANGUAGES if getattr(obj, f"{field}_{code}", None)}
        if present:
            missing += [(field, code) for code in CONTENT_LANGUAGES if code not in present]
    return missing


def translated_fields(model):
    """The fields of `model` people read in either language (tracker/translation.py)."""
    from modeltranslation.translator import translator

    return list(translator.get_options_for_model(model).fields)


def has_text(column):
    """A filter for rows whose `column` holds a text (neither NULL nor empty)."""
    return Q(**{f"{column}__isnull": False}) & ~Q(**{column: ""})


def untranslated(model, *, limit=TO_TRANSLATE_LIMIT):
    """Return [(object, [(field, missing language)])] for rows of `model` with a text given
    in one language but not another, at most `limit` of them (one query)."""
    fields = translated_fields(model)
    lacking = Q()
    for field in fields:
        for code in CONTENT_LANGUAGES:
            given = Q()
            for other in CONTENT_LANGUAGES:
                if other != code:
                    given |= has_text(f"{field}_{other}")
            lacking |= given & ~has_text(f"{field}_{code}")
    rows = model._default_manager.filter(lacking).order_by("pk")[:limit]
    return [(obj, missing_translations(obj, fields)) for obj in rows]


def untranslated_by_model(models):
    """[(model, untranslated rows)] for each of `models`, skipping those with none."""
    groups = [(model, untranslated(model)) for model in models]
    return [(model, rows) for model, rows in groups if rows]
