"""The texts people read, in English and Spanish (django-modeltranslation).

Each field named here gets a column per language (`title_en`, `title_es`); reading `title`
gives the reader's language, else the other one (settings.MODELTRANSLATION_FALLBACK_LANGUAGES),
and tracker/texts.py says which language a shown text is in.
"""

from modeltranslation.fields import TranslationField
from modeltranslation.translator import TranslationOptions, register

from .models import Agency, Document, Evidence, Recommendation, StatusChange, Theme


@register(Document)
class DocumentTranslation(TranslationOptions):
    fields = ["title", "summary"]


@register(Recommendation)
class RecommendationTranslation(TranslationOptions):
    fields = ["title", "text", "note"]


@register(Agency)
class AgencyTranslation(TranslationOptions):
    fields = ["name"]
    # Names are unique in each language; a missing one is NULL, which never clashes.
    empty_values = None


@register(Theme)
class ThemeTranslation(TranslationOptions):
    fields = ["name"]
    empty_values = None


@register(StatusChange)
class StatusChangeTranslation(TranslationOptions):
    fields = ["rationale"]


@register(Evidence)
class EvidenceTranslation(TranslationOptions):
    fields = ["title", "excerpt"]


def start_missing_texts_empty(*models):
    """A text not yet given in a language is "" (as the field it translates), not NULL: the
    admin saves an empty box as "", and the audit trail sees no change where none was made.
    Unique names keep NULL, which never clashes."""
    for model in models:
        for field in model._meta.fields:
            if isinstance(field, TranslationField) and not field.translated_field.unique:
                field.default = ""


start_missing_texts_empty(Document, Recommendation, StatusChange, Evidence)
