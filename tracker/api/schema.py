"""Additions to the generated OpenAPI schema (drf-spectacular's POSTPROCESSING_HOOKS)."""

from django.conf import settings

# The content-language parameter every API read takes (tracker.middleware.ApiLanguageMiddleware).
LANG_PARAMETER = {
    "name": "lang",
    "in": "query",
    "required": False,
    "description": "The language of the texts returned (else Accept-Language); a text not yet "
    "translated comes in its original language, as its record's `languages` says.",
    "schema": {"type": "string", "enum": [code for code, _name in settings.LANGUAGES]},
}


def add_lang_parameter(result, generator, request, public):
    """Document `?lang=` on every GET operation."""
    for path_item in result.get("paths", {}).values():
        operation = path_item.get("get")
        if operation is not None:
            parameters = operation.setdefault("parameters", [])
            if not any(parameter.get("name") == "lang" for parameter in parameters):
                parameters.append(LANG_PARAMETER)
    return result
