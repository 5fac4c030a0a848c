"""Content in both languages: staff give the Spanish version of a text in the admin, readers of
Spanish get it on pages, in the API, feeds and digests, and a text not yet translated shows in
its original language, marked with its lang attribute."""

import datetime
import html
import io
import re
from pathlib import Path

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import (
    AgencyFactory,
    DocumentFactory,
    EvidenceFactory,
    RecommendationFactory,
    SubscriptionFactory,
    ThemeFactory,
)
from tests.support.staff import change_form_data
from tracker import digests
from tracker.demo import load_demo
from tracker.models import Document, Recommendation, StatusChange

UTC = datetime.UTC
WEEK_45 = datetime.datetime(2026, 11, 2, 9, tzinfo=UTC)

TITLE_EN = "Expand refugee processing in the region"
TITLE_ES = "Ampliar el procesamiento de refugiados en la región"
TEXT_EN = "The administration should open more processing centers."
TEXT_ES = "La administración debería abrir más centros de procesamiento."


@pytest.fixture
def recommendation(db, uscis):
    document = DocumentFactory(code="WRC-2024", title="Migration does not start at the border")
    return RecommendationFactory(
        document=document, code="WRC-2024-1", title=TITLE_EN, text=TEXT_EN, lead=uscis
    )


def public_url(recommendation):
    return reverse(
        "public:recommendation", args=[recommendation.document.code, recommendation.code]
    )


def translate_in_admin(client, recommendation):
    lead = recommendation.ownerships.get()
    data = change_form_data(recommendation, [(lead.pk, lead.agency, "lead")])
    data.update(title_es=TITLE_ES, text_es=TEXT_ES)
    url = reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[-2000:]


def test_the_admin_edits_both_languages_side_by_side(client, admin_user, recommendation):
    client.force_login(admin_user)
    url = reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
    page = client.get(url).content.decode()
    for name in ["title_en", "title_es", "text_en", "text_es", "note_en", "note_es"]:
        assert f'name="{name}"' in page, name


def test_a_spanish_version_given_in_the_admin_reaches_page_api_and_digest(
    client, admin_user, recommendation, smtp_server
):
    client.force_login(admin_user)
    translate_in_admin(client, recommendation)
    client.logout()

    page = client.get(public_url(recommendation), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert '<html lang="es">' in page
    assert TITLE_ES in page and TEXT_ES in page
    assert TITLE_EN not in page
    english = client.get(public_url(recommendation), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert TITLE_EN in english and TITLE_ES not in english

    api_url = reverse("api:recommendation-detail", args=[recommendation.pk])
    by_query = client.get(api_url, {"lang": "es"}).json()
    by_header = client.get(api_url, HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9").json()
    for data in (by_query, by_header):
        assert (data["title"], data["text"]) == (TITLE_ES, TEXT_ES)
        assert data["languages"] == {"title": "es", "text": "es"}
    in_english = client.get(api_url, {"lang": "en"}, HTTP_ACCEPT_LANGUAGE="es").json()
    assert in_english["title"] == TITLE_EN
    assert in_english["languages"]["title"] == "en"

    SubscriptionFactory(email="ana@example.org", language="es", documents=[recommendation.document])
    SubscriptionFactory(email="bo@example.org", language="en", documents=[recommendation.document])
    with time_machine.travel(WEEK_45 + datetime.timedelta(days=2), tick=False):
        recommendation.record_status(
            "implemented",
            effective_on=datetime.date(2026, 10, 1),
            evidence=[EvidenceFactory(title="Processing opens")],
        )
    with time_machine.travel(WEEK_45 + datetime.timedelta(weeks=1), tick=False):
        assert digests.send_due_digests() == {"sent": 2}
    [spanish] = smtp_server.to("ana@example.org")
    [english_mail] = smtp_server.to("bo@example.org")
    for part in mail_parts(spanish):
        assert TITLE_ES in part and TITLE_EN not in part
    for part in mail_parts(english_mail):
        assert TITLE_EN in part and TITLE_ES not in part


def mail_parts(message):
    return [message.get_body(preferencelist=(kind,)).get_content() for kind in ("plain", "html")]


def test_an_untranslated_text_shows_its_original_marked_with_its_language(client, recommendation):
    theme = ThemeFactory(name="Refugee protection")
    recommendation.themes.add(theme)
    page = client.get(public_url(recommendation), HTTP_ACCEPT_LANGUAGE="es").content.decode()

    assert '<html lang="es">' in page
    heading = re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)
    assert f'<span lang="en">{TITLE_EN}</span>' in heading
    assert f'<div lang="en"><p>{TEXT_EN}</p></div>' in page
    assert '<span lang="en">U.S. Citizenship and Immigration Services</span>' in page
    assert '<span lang="en">Refugee protection</span>' in page
    body = page.split("<body", 1)[1]
    for english in (TITLE_EN, TEXT_EN, "Refugee protection"):
        shown = body.count(english)
        marked = len(re.findall(rf'lang="en">(?:<p>)?{re.escape(english)}', body))
        assert shown == marked, english  # every appearance is marked

    english = client.get(public_url(recommendation), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'lang="en">' + TITLE_EN not in english  # nothing to mark on an English page


def test_a_spanish_original_shows_marked_on_the_english_page(client, db, uscis):
    agency = AgencyFactory(name="Comisión Mexicana de Ayuda a Refugiados", acronym="COMAR")
    document = DocumentFactory(code="CDH-2025", original_language="es")
    recommendation = RecommendationFactory(document=document, code="CDH-2025-1", lead=agency)
    Recommendation.objects.filter(pk=recommendation.pk).update(
        title_en="", title_es=TITLE_ES, text_en="", text_es=TEXT_ES
    )
    page = client.get(public_url(recommendation), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'<span lang="es">{TITLE_ES}</span>' in page
    assert f'<div lang="es"><p>{TEXT_ES}</p></div>' in page


def test_untranslated_texts_are_marked_in_the_feed_and_the_digest(
    client, recommendation, smtp_server
):
    SubscriptionFactory(email="ana@example.org", language="es", documents=[recommendation.document])
    with time_machine.travel(WEEK_45 + datetime.timedelta(days=2), tick=False):
        recommendation.record_status(
            "in_progress",
            effective_on=datetime.date(2026, 10, 1),
            rationale="Two centers opened in October.",
        )
    feed = client.get(reverse("public:feed_updates"), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert '<feed xml:lang="es"' in feed
    assert '<entry xml:lang="en">' in feed  # its recommendation has no Spanish version yet
    assert '&lt;span lang="en"&gt;Two centers opened in October.' in feed
    english_feed = client.get(reverse("public:feed_updates"), HTTP_ACCEPT_LANGUAGE="en")
    assert "<entry>" in english_feed.content.decode()

    with time_machine.travel(WEEK_45 + datetime.timedelta(weeks=1), tick=False):
        digests.send_due_digests()
    [message] = smtp_server.to("ana@example.org")
    text, html = mail_parts(message)
    assert TITLE_EN in text and "Two centers opened in October." in text
    assert '<html lang="es">' in html
    assert f'<span lang="en">{TITLE_EN}</span>' in html
    assert '<span lang="en">Two centers opened in October.</span>' in html


def test_the_texts_to_translate_page_lists_what_lacks_a_version(client, admin_user, recommendation):
    translated = RecommendationFactory(document=recommendation.document, code="WRC-2024-2")
    Recommendation.objects.filter(pk=translated.pk).update(
        title_es="Traducida", text_es="Traducida del todo."
    )
    client.force_login(admin_user)
    page = client.get(reverse("admin:tracker_texts_to_translate")).content.decode()
    change = reverse("admin:tracker_recommendation_change", args=[recommendation.pk])
    assert f'href="{change}"' in page
    assert "title (es)" in page
    other = reverse("admin:tracker_recommendation_change", args=[translated.pk])
    assert f'href="{other}"' not in page


def test_staff_translate_a_recorded_rationale_and_history_stays(client, editor, recommendation):
    change = recommendation.record_status(
        "in_progress", effective_on=datetime.date(2024, 9, 1), rationale="Two centers opened."
    )
    client.force_login(editor)
    url = reverse("admin:tracker_statuschange_translate", args=[change.pk])
    assert 'name="rationale_en"' not in client.get(url).content.decode()  # as recorded
    response = client.post(url, {"rationale_es": "Se abrieron dos centros."})
    assert response.status_code == 302
    change = StatusChange.objects.get(pk=change.pk)
    assert (change.rationale_en, change.rationale_es) == (
        "Two centers opened.",
        "Se abrieron dos centros.",
    )
    assert change.status == "in_progress"
    page = client.get(public_url(recommendation), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Se abrieron dos centros." in page


# -- The Spanish edition of a document ----------------------------------------------------

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def english_brief(db):
    call_command(
        "import_document",
        str(SAMPLES / "bilingual-brief.en.md"),
        code="PMR-2025",
        publisher="Protection Monitoring Research",
        stdout=io.StringIO(),
    )
    return Document.objects.get(code="PMR-2025")


def import_edition(name, *options):
    out = io.StringIO()
    call_command(
        "import_document",
        str(SAMPLES / name),
        "--translation-of",
        "PMR-2025",
        "--lang",
        "es",
        *options,
        stdout=out,
    )
    return out.getvalue()


def test_a_dry_run_prints_the_pairing_and_saves_nothing(english_brief):
    out = import_edition("bilingual-brief.es.md", "--dry-run")
    assert "PMR-2025: 7 recommendations paired with their es version." in out
    assert "PMR-2025-1.1  Open processing centers in Guatemala, Honduras and El Salvador" in out
    assert "es: Abrir centros de procesamiento en Guatemala, Honduras y El Salvador" in out
    assert "Dry run: nothing was written." in out
    assert not Recommendation.objects.exclude(title_es__in=["", None]).exists()


def test_the_spanish_edition_becomes_the_translation_of_each_recommendation(english_brief, client):
    out = import_edition("bilingual-brief.es.md")
    assert "Saved the es translation." in out
    child = Recommendation.objects.get(code="PMR-2025-2.1")
    assert child.title_en == "Reopen the family reunification parole programs"
    assert child.text_es == (
        "Reabrir los programas de permiso humanitario para la reunificación familiar."
    )
    assert child.title_es.startswith("Reabrir los programas de permiso humanitario")
    assert child.note_es == "Miles de peticiones aprobadas esperan."
    english_brief.refresh_from_db()
    assert english_brief.title_es == "Protección a lo largo de la ruta migratoria"
    assert english_brief.title_en == "Protection along the migration route"

    page = client.get(public_url(child), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Miles de peticiones aprobadas esperan." in page
    assert 'lang="en"' not in page.split("<main", 1)[1].split("</h1>", 1)[0]


def test_an_edition_of_another_structure_is_refused_and_nothing_is_saved(english_brief):
    with pytest.raises(CommandError) as refused:
        import_edition("bilingual-brief.es-mismatch.md")
    message = str(refused.value)
    assert "structure differs from PMR-2025's" in message
    assert "lacks PMR-2025-1.2" in message
    assert "PMR-2025-2.3" in message
    assert "Nothing was saved." in message
    assert not Recommendation.objects.exclude(title_es__in=["", None]).exists()
    english_brief.refresh_from_db()
    assert not english_brief.title_es


# -- Search ---------------------------------------------------------------------------------


def test_search_finds_a_recommendation_by_words_of_either_language(client, recommendation):
    Recommendation.objects.filter(pk=recommendation.pk).update(title_es=TITLE_ES, text_es=TEXT_ES)
    for query in ("centers", "centros procesamiento", "refugiados"):
        page = client.get(reverse("public:search"), {"q": query}).content.decode()
        assert "WRC-2024-1" in page, query
        found = client.get(reverse("api:recommendation-list"), {"search": query}).json()
        assert [item["code"] for item in found["results"]] == ["WRC-2024-1"], query
    spanish_page = client.get(
        reverse("public:search"), {"q": "centers"}, HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()
    assert TITLE_ES in spanish_page  # found by its English words, shown in Spanish
    assert (
        "WRC-2024-1"
        not in client.get(reverse("public:search"), {"q": "fronteras"}).content.decode()
    )


# -- The demo -------------------------------------------------------------------------------


def test_the_spanish_demo_shows_translated_texts_and_marks_the_rest(client, db):
    load_demo()
    page = client.get("/documents/WRC-2024/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "<h1>La migración no empieza en la frontera de EE. UU." in page
    assert "Invertir en la iniciativa Movilidad Segura y mejorarla" in page
    assert '<span lang="en">The administration should ensure that international' in page
    recommendation = client.get(
        "/documents/WRC-2024/recommendations/WRC-2024-1/", HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()
    assert "<li>Vías legales</li>" in recommendation
    assert ">La Casa Blanca</a>" in recommendation
    english = client.get("/documents/WRC-2024/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Invest in and improve the Safe Mobility Initiative" in english


def test_staff_review_the_pairing_in_the_admin_before_the_translation_is_saved(
    client, admin_user, english_brief
):
    client.force_login(admin_user)
    url = reverse("admin:tracker_document_import_translation", args=[english_brief.pk])
    with open(SAMPLES / "bilingual-brief.es.md", "rb") as edition:
        review = client.post(url, {"file": edition, "language": "es"})
    page = review.content.decode()
    assert review.status_code == 200
    assert "Abrir centros de procesamiento en Guatemala" in page
    assert "Open processing centers in Guatemala" in page
    assert not Recommendation.objects.exclude(title_es__in=["", None]).exists()

    text = re.search(r'name="text" value="([^"]*)"', page, re.S).group(1)
    saved = client.post(
        url, {"text": html.unescape(text), "fmt": "markdown", "language": "es", "confirm": "1"}
    )
    assert saved.status_code == 302
    child = Recommendation.objects.get(code="PMR-2025-1.1")
    assert child.text_es.startswith("Abrir centros de procesamiento")


def test_the_admin_refuses_an_edition_of_another_structure(client, admin_user, english_brief):
    client.force_login(admin_user)
    url = reverse("admin:tracker_document_import_translation", args=[english_brief.pk])
    with open(SAMPLES / "bilingual-brief.es-mismatch.md", "rb") as edition:
        page = client.post(url, {"file": edition, "language": "es"}).content.decode()
    assert "structure differs from PMR-2025" in page
    assert "Save the translation" not in page
    assert not Recommendation.objects.exclude(title_es__in=["", None]).exists()


def test_the_api_schema_documents_lang_and_languages(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    listing = schema["paths"]["/api/v1/recommendations/"]["get"]
    [lang] = [parameter for parameter in listing["parameters"] if parameter["name"] == "lang"]
    assert lang["schema"]["enum"] == ["en", "es"]
    fields = schema["components"]["schemas"]["Recommendation"]["properties"]
    assert fields["languages"]["additionalProperties"]["enum"] == ["en", "es"]


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        ("document", ["title", "summary"]),
        ("recommendation", ["title", "text", "note"]),
        ("agency", ["name"]),
        ("theme", ["name"]),
        ("evidence", ["title", "excerpt"]),
    ],
)
def test_each_text_has_an_english_and_a_spanish_box_in_the_admin(client, admin_user, model, fields):
    client.force_login(admin_user)
    page = client.get(reverse(f"admin:tracker_{model}_add")).content.decode()
    for field in fields:
        for language in ("en", "es"):
            assert f'name="{field}_{language}"' in page, (field, language)


def test_an_api_write_with_lang_es_sets_the_spanish_version_only(admin_user, recommendation):
    api = APIClient()
    api.force_authenticate(admin_user)
    url = reverse("api:recommendation-detail", args=[recommendation.pk])
    response = api.patch(f"{url}?lang=es", {"title": TITLE_ES}, format="json")
    assert response.status_code == 200
    assert response.json()["languages"] == {"title": "es", "text": "en"}
    stored = Recommendation.objects.values("title_en", "title_es").get(pk=recommendation.pk)
    assert stored == {"title_en": TITLE_EN, "title_es": TITLE_ES}


def test_a_document_published_in_spanish_is_imported_into_its_spanish_texts(client, db):
    call_command(
        "import_document",
        str(SAMPLES / "bilingual-brief.es.md"),
        code="PMR-2025",
        publisher="Protection Monitoring Research",
        lang="es",
        stdout=io.StringIO(),
    )
    document = Document.objects.get(code="PMR-2025")
    assert document.original_language == "es"
    assert document.title_es == "Protección a lo largo de la ruta migratoria"
    assert not document.title_en
    child = Recommendation.objects.get(code="PMR-2025-1.1")
    assert child.text_es.startswith("Abrir centros de procesamiento")
    assert not child.text_en
    page = client.get(public_url(child), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<div lang="es"><p>Abrir centros de procesamiento' in page


def test_a_badge_marks_an_untranslated_name_with_its_language(client, recommendation):
    import xml.etree.ElementTree as ET

    svg_ns = "{http://www.w3.org/2000/svg}"
    url = reverse("public:badge_recommendation", args=["WRC-2024", "WRC-2024-1"])

    def badge():
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="es")
        return ET.fromstring(response.content)

    svg = badge()
    assert svg.get("lang") == "es"
    assert TITLE_EN not in svg.get("aria-label")  # not read out in a Spanish voice
    description = svg.find(f"{svg_ns}desc")
    assert (description.get("lang"), description.text) == ("en", TITLE_EN)
    assert svg.get("aria-describedby") == description.get("id")

    recommendation.title_es = TITLE_ES
    recommendation.save()  # as staff save it: the cached badge goes
    svg = badge()
    assert TITLE_ES in svg.get("aria-label")
    assert svg.find(f"{svg_ns}desc") is None
