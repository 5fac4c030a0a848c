import csv
import datetime
import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.support.seeds import HILL_OP_ED, WRC_BRIEF, read_seed, run_command, seed_path
from tracker.directory import ensure_agency_directory
from tracker.importing import (
    CSV,
    MARKDOWN,
    OP_ED,
    AgencyIndex,
    DocumentImportError,
    default_document_code,
    detect_format,
    export_csv,
    import_document,
    parse_markdown,
    parse_op_ed,
    short_title,
)
from tracker.models import Agency, Document, Ownership, Publisher, Recommendation, Theme

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
MESSY_BRIEF = "messy-brief.md"
SHORT_OP_ED = "short-op-ed.txt"
MESSY_BRIEF_CODES = ["1", "1.1", "1.2", "1.3", "1.4", "2", "2.1", "2.2", "2.3", "3", "3.1"]

# What the WRC brief's recommendations are addressed to: lead, then supporting owners.
WRC_OWNERS = {
    "1": ("WH", []),
    "1.1": ("WH", []),
    "1.2": ("WH", []),
    "1.3": ("USCIS", ["DOS"]),
    "1.4": ("USCIS", []),
    "1.5": ("WH", []),
    "1.6": ("WH", []),
    "2": ("WH", []),
    "2.1": ("WH", []),
    "2.2": ("WH", []),
    "2.3": ("WH", ["Congress"]),
    "3": ("WH", []),
    "3.1": ("WH", []),
    "3.2": ("WH", []),
    "4": ("WH", []),
    "4.1": ("Congress", ["PRM"]),
    "4.2": ("Congress", ["PRM"]),
    "5": ("WH", []),
    "5.1": ("WH", ["Government of Mexico"]),
    "5.2": ("WH", ["Congress"]),
}


def read_sample(name):
    return (SAMPLES_DIR / name).read_text(encoding="utf-8")


def import_sample(source, **overrides):
    options = {
        "code": "EI-2024",
        "publisher": "Example Institute",
        "publisher_acronym": "EI",
        "filename": MESSY_BRIEF,
    }
    return import_document(source, **options | overrides)


def owners(document, local_code):
    return owners_of(document.recommendations.get(code=f"{document.code}-{local_code}"))


def owners_of(recommendation):
    """Return the recommendation's lead and its sorted supporting owners, by display name."""
    ownerships = recommendation.ownerships.select_related("agency")
    leads = [o.agency.display_name for o in ownerships if o.role == Ownership.Role.LEAD]
    supporting = sorted(
        o.agency.display_name for o in ownerships if o.role == Ownership.Role.SUPPORTING
    )
    assert len(leads) == 1, f"{recommendation.code} has leads {leads}"
    return leads[0], supporting


def local_codes(document):
    prefix = f"{document.code}-"
    return [r.code.removeprefix(prefix) for r in document.recommendations.order_by("position")]


@pytest.fixture
def wrc_brief(db):
    result = import_document(
        read_seed(WRC_BRIEF),
        filename=WRC_BRIEF,
        code="WRC-2024",
        publisher="Women's Refugee Commission",
        publisher_acronym="WRC",
        kind=Document.Kind.BRIEF,
        published_on=datetime.date(2024, 7, 1),
    )
    return result.document


@pytest.fixture
def hill_op_ed(db):
    result = import_document(
        read_seed(HILL_OP_ED),
        filename=HILL_OP_ED,
        code="HILL-2021",
        publisher="The Hill",
        published_on=datetime.date(2021, 4, 1),
    )
    return result.document


@pytest.fixture
def messy_brief(db):
    return import_sample(read_sample(MESSY_BRIEF)).document


# --- The WRC brief -------------------------------------------------------------------------


@pytest.mark.seeds
def test_wrc_brief_gives_five_recommendations_and_fifteen_sub_recommendations(wrc_brief):
    assert local_codes(wrc_brief) == list(WRC_OWNERS)
    recommendations = wrc_brief.recommendations.all()
    assert sum(r.parent_id is None for r in recommendations) == 5
    assert sum(r.parent_id is not None for r in recommendations) == 15
    assert wrc_brief.recommendations.get(code="WRC-2024-1.6").parent.code == "WRC-2024-1"


@pytest.mark.seeds
def test_wrc_brief_top_level_text_and_section_title_come_from_the_numbered_heading(wrc_brief):
    top = wrc_brief.recommendations.get(code="WRC-2024-5")
    assert top.text == "Support deported non-Mexican migrants' integration in Mexico."
    assert top.title == "Support deported non-Mexican migrants' integration in Mexico"
    child = wrc_brief.recommendations.get(code="WRC-2024-5.2")
    assert child.section_title == top.section_title == top.text


@pytest.mark.seeds
def test_wrc_brief_bold_sentence_closing_section_one_is_a_sub_recommendation(wrc_brief):
    recommendation = wrc_brief.recommendations.get(code="WRC-2024-1.6")
    assert recommendation.text == (
        "The administration should continue to use its authority to expand family "
        "reunification pathways, the Central American Minors program, and other legal "
        "pathways that ease pressure at the border and keep people safe."
    )
    assert recommendation.title == (
        "The administration should continue to use its authority to expand family reunification…"
    )


@pytest.mark.seeds
def test_wrc_brief_bold_facts_and_names_are_not_imported(wrc_brief):
    texts = [text.rstrip(".") for text in wrc_brief.recommendations.values_list("text", flat=True)]
    for fact in ("returned to Mexico", "35,000 to 50,000 refugees", "Safe Mobility Offices"):
        assert fact not in texts
    assert "120 million people" not in texts  # bold in the introduction


@pytest.mark.seeds
def test_wrc_brief_leads_and_supporting_owners_are_detected(wrc_brief):
    detected = {code: owners(wrc_brief, code) for code in WRC_OWNERS}
    assert detected == {code: (lead, supporting) for code, (lead, supporting) in WRC_OWNERS.items()}


@pytest.mark.seeds
def test_wrc_brief_recommendations_are_addressed_to_their_lead(wrc_brief):
    addressed_to = dict(wrc_brief.recommendations.values_list("code", "addressed_to"))
    assert addressed_to["WRC-2024-1.1"] == Recommendation.AddressedTo.ADMINISTRATION
    assert addressed_to["WRC-2024-1.4"] == Recommendation.AddressedTo.AGENCY
    assert addressed_to["WRC-2024-4.1"] == Recommendation.AddressedTo.CONGRESS


@pytest.mark.seeds
def test_wrc_brief_note_continues_across_the_page_break_without_link_markup(wrc_brief):
    recommendation = wrc_brief.recommendations.get(code="WRC-2024-4.2")
    assert recommendation.text == "Fund PRM to help strengthen Mexico\u2019s protection systems."
    assert recommendation.note == (
        "Mexico\u2019s refugee agency, Comisión Mexicana de Ayuda a Refugiados (COMAR) needs to "
        "expand and modernize to meet the growing number of applications it receives. "
        "Initiatives and policies that combat discrimination and violence against migrants and "
        "provide security for migrants and those who assist them are also needed."
    )


@pytest.mark.seeds
def test_wrc_brief_text_is_cleaned_of_markdown(wrc_brief):
    for recommendation in wrc_brief.recommendations.all():
        for text in (recommendation.text, recommendation.note, recommendation.title):
            assert not any(mark in text for mark in ("**", "](", "\\(", "»", "#")), text
    assert wrc_brief.recommendations.get(code="WRC-2024-2.3").text.startswith(
        "Engage with and incorporate recommendations of relevant stakeholders"
    )


@pytest.mark.seeds
def test_wrc_brief_document_takes_its_title_from_the_first_heading(wrc_brief):
    assert wrc_brief.title == (
        "Migration Does Not Start at the US Border: A Regional Approach to Managing Migration "
        "and Keeping People Safe"
    )
    assert wrc_brief.publisher.acronym == "WRC"
    assert wrc_brief.addressee.acronym == "WH"


@pytest.mark.seeds
def test_wrc_brief_themes_are_detected_from_keywords(wrc_brief):
    themes = {r.code: {t.name for t in r.themes.all()} for r in wrc_brief.recommendations.all()}
    assert {"Funding", "Mexico"} <= themes["WRC-2024-4.2"]
    assert "Legal pathways" in themes["WRC-2024-1.6"]
    assert "Regional cooperation" in themes["WRC-2024-2.1"]


@pytest.mark.seeds
def test_wrc_brief_imports_through_the_command_with_a_code_from_publisher_and_date(db):
    output = run_command(
        seed_path(WRC_BRIEF),
        "--publisher",
        "Women's Refugee Commission",
        "--published-on",
        "2024-07-01",
        "--kind",
        "brief",
    )
    assert "20 created, 0 updated, 0 unchanged, 0 withdrawn." in output
    assert Document.objects.get().code == "WRC-2024"


# --- The Hill op-ed ------------------------------------------------------------------------


@pytest.mark.seeds
def test_hill_op_ed_gives_five_steps_all_led_by_the_white_house(hill_op_ed):
    assert local_codes(hill_op_ed) == ["1", "2", "3", "4", "5"]
    assert hill_op_ed.kind == Document.Kind.OP_ED
    for code in local_codes(hill_op_ed):
        assert owners(hill_op_ed, code) == ("WH", [])


@pytest.mark.seeds
def test_hill_op_ed_steps_lose_their_ordinal_and_are_capitalised(hill_op_ed):
    texts = list(hill_op_ed.recommendations.values_list("text", flat=True))
    assert texts[0].startswith("The United States must marshal and deploy immediate")
    assert texts[4].startswith("A strategy of hope requires sending unmistakable signals")


@pytest.mark.seeds
def test_hill_op_ed_boilerplate_is_ignored_and_title_and_author_detected(hill_op_ed):
    assert hill_op_ed.title == "5 immediate migration management steps for Kamala Harris"
    assert hill_op_ed.author == "Dan Restrepo"
    everything = " ".join(f"{r.text} {r.note}" for r in hill_op_ed.recommendations.all())
    for boilerplate in ("Getty Images", "views expressed", "Copyright", "See all", "Load more"):
        assert boilerplate not in everything


@pytest.mark.seeds
def test_hill_op_ed_notes_stop_before_the_summary_and_the_bio(hill_op_ed):
    notes = dict(hill_op_ed.recommendations.values_list("code", "note"))
    assert notes["HILL-2021-2"] == ""
    assert notes["HILL-2021-4"].startswith("Put into motion")
    last = notes["HILL-2021-5"].split("\n\n")
    assert len(last) == 2
    assert last[0].startswith("And here again")
    assert last[1].startswith("Sanctioning a president")
    assert "Restrepo served" not in notes["HILL-2021-5"]


# --- Parsing messy documents ---------------------------------------------------------------


def test_messy_markdown_gives_sections_under_any_heading_style_and_numbering():
    parsed = parse_markdown(read_sample(MESSY_BRIEF), document_code="EI-2024")
    recommendations = {r.code: r for r in parsed.recommendations}
    assert list(recommendations) == [f"EI-2024-{code}" for code in MESSY_BRIEF_CODES]
    assert recommendations["EI-2024-1"].text == "Restore access to asylum at ports of entry."
    assert recommendations["EI-2024-2"].text == "Expand refugee resettlement from the region"
    assert recommendations["EI-2024-3"].text == "Work with Mexico."
    assert parsed.title == "Protecting People on the Move"


def test_messy_markdown_joins_bold_split_across_lines_and_keeps_notes():
    parsed = parse_markdown(read_sample(MESSY_BRIEF), document_code="EI-2024")
    recommendations = {r.code: r for r in parsed.recommendations}
    assert recommendations["EI-2024-1.1"].text == (
        "The Department of Homeland Security should restore access to asylum at every port of entry"
    )
    assert recommendations["EI-2024-1.1"].note == ""
    assert recommendations["EI-2024-1.2"].text == "Fund USCIS to hire more asylum officers."
    assert recommendations["EI-2024-1.2"].note == "Backlogs now exceed one million cases."
    assert recommendations["EI-2024-2.2"].text == (
        "Increase refugee admissions ceilings for Latin America and the Caribbean."
    )
    assert recommendations["EI-2024-1.4"].text == (
        "Fund interpreters for every child appearing before the Executive Office for Immigration "
        "Review."
    )
    assert recommendations["EI-2024-2.3"].note == (
        "The program covers only three cities, see the map (2024)."
    )


def test_messy_markdown_ignores_bold_facts_the_introduction_and_the_conclusion():
    parsed = parse_markdown(read_sample(MESSY_BRIEF), document_code="EI-2024")
    texts = " ".join(r.text for r in parsed.recommendations)
    ignored_bold = ("900,000", "3,000 families", "USCIS must respond", "one million")
    for ignored in (*ignored_bold, "2 million", "introduction", "conclusion"):
        assert ignored not in texts


def test_markdown_part_ends_at_a_horizontal_rule():
    text = "## 1. Do this.\n\n- **Congress should do this first.**\n\n---\n\n- **Not this.**\n"
    parsed = parse_markdown(text, document_code="X")
    assert [r.text for r in parsed.recommendations] == [
        "Do this.",
        "Congress should do this first.",
    ]


def test_markdown_with_a_repeated_section_number_is_refused():
    with pytest.raises(DocumentImportError, match="appear twice"):
        parse_markdown("## 1. One\n\n## 1. Again\n", document_code="X")


def test_short_op_ed_steps_byline_and_closing_paragraphs():
    parsed = parse_op_ed(read_sample(SHORT_OP_ED), document_code="OP-2024")
    assert parsed.title == "Three ways to fix the asylum backlog"
    assert parsed.author == "Maria Lopez"
    assert [r.text for r in parsed.recommendations] == [
        "Congress must fund more immigration judges so that cases are heard within six months.",
        "USCIS should let asylum officers decide more cases at the border.",
        "The administration should expand legal pathways so that fewer people need asylum at all.",
    ]
    assert parsed.recommendations[0].note == "That alone would halve the backlog."
    assert parsed.recommendations[2].note == (
        "This would relieve pressure on the system.\n\nIt would also save lives."
    )


def test_op_ed_needs_a_first_step_and_a_second():
    with pytest.raises(DocumentImportError, match="No ordinal steps"):
        parse_op_ed("A title\n\nSecond, do this.\n\nThird, do that.\n", document_code="X")
    with pytest.raises(DocumentImportError, match="two or more"):
        parse_op_ed("A title\n\nFirst, do this.\n\nAnd that is all.\n", document_code="X")


def test_format_is_detected_from_the_extension_then_the_content():
    markdown = read_sample(MESSY_BRIEF)
    assert detect_format(markdown, filename="brief.md") == MARKDOWN
    assert detect_format(markdown, filename="brief.txt") == MARKDOWN
    assert detect_format(read_sample(SHORT_OP_ED), filename="op-ed.txt") == OP_ED
    assert detect_format("Code,Text\nX-1,Do it.\n") == CSV
    with pytest.raises(DocumentImportError, match="Unrecognised document"):
        detect_format("Just a note.\n\nNothing numbered here.\n", filename="note.txt")


def test_short_title_is_the_first_sentence_cut_at_a_word_boundary():
    assert short_title("The U.S. should act now. Then more.") == "The U.S. should act now"
    long_title = short_title("Fund " + "very " * 30 + "much.")
    assert len(long_title) <= 90
    assert long_title.endswith("very…")


def test_default_document_code_comes_from_the_acronym_or_initials_and_the_year():
    july = datetime.date(2024, 7, 1)
    assert default_document_code(publisher_acronym="WRC", published_on=july) == "WRC-2024"
    assert default_document_code(publisher="Women's Refugee Commission", published_on=july) == (
        "WRC-2024"
    )
    assert default_document_code(publisher="The Hill", published_on=july) == "H-2024"
    with pytest.raises(DocumentImportError, match="Give a document code"):
        default_document_code(publisher="The Hill")


# --- Owners --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_agency_mentions_match_acronyms_by_case_and_drop_ancestors_of_named_agencies():
    ensure_agency_directory()
    index = AgencyIndex(Agency.objects.all())

    def named(text):
        return [agency.display_name for agency in index.agencies_in(text)]

    assert named("Serve ice cream to ICE officers.") == ["ICE"]
    assert named(
        "Fund the Department of State Bureau of Population, Refugees, and Migration (PRM)."
    ) == ["PRM"]
    assert named("The State Department and the Mexican government agree.") == [
        "DOS",
        "Government of Mexico",
    ]


@pytest.mark.django_db
def test_messy_markdown_owners_follow_subject_then_lead_in_then_addressee(messy_brief):
    assert owners(messy_brief, "1.1") == ("DHS", [])
    assert owners(messy_brief, "1.2") == ("Congress", ["USCIS"])
    assert owners(messy_brief, "2.1") == ("DHS", [])
    assert owners(messy_brief, "2.3") == ("WH", ["UNHCR"])
    assert owners(messy_brief, "3.1") == ("Government of Mexico", ["COMAR"])
    addressed_to = messy_brief.recommendations.get(code="EI-2024-3.1").addressed_to
    assert addressed_to == Recommendation.AddressedTo.PARTNER


@pytest.mark.django_db
def test_op_ed_step_whose_subject_is_an_agency_is_led_by_it():
    document = import_sample(read_sample(SHORT_OP_ED), code="OP-2024", filename="x.txt").document
    assert document.author == "Maria Lopez"
    assert [owners(document, code)[0] for code in ("1", "2", "3")] == ["Congress", "USCIS", "WH"]


# --- Re-importing --------------------------------------------------------------------------


@pytest.mark.django_db
def test_importing_twice_creates_no_duplicates_and_reports_unchanged(messy_brief):
    text = read_sample(MESSY_BRIEF)
    pks = set(Recommendation.objects.values_list("pk", flat=True))
    result = import_sample(text)
    assert (len(result.created), len(result.updated), len(result.withdrawn)) == (0, 0, 0)
    assert len(result.unchanged) == len(MESSY_BRIEF_CODES)
    assert set(Recommendation.objects.values_list("pk", flat=True)) == pks
    assert Document.objects.count() == 1


@pytest.mark.django_db
def test_reimport_updates_an_edited_text_in_place(messy_brief):
    before = messy_brief.recommendations.get(code="EI-2024-1.3")
    edited = read_sample(MESSY_BRIEF).replace(
        "Appropriate money for legal", "Appropriate more money for legal"
    )
    result = import_sample(edited)
    assert [r.code for r in result.updated] == ["EI-2024-1.3"]
    after = Recommendation.objects.get(code="EI-2024-1.3")
    assert after.pk == before.pk
    assert after.text == "Appropriate more money for legal representation of children."
    assert after.title == "Appropriate more money for legal representation of children"
    assert Recommendation.objects.count() == len(MESSY_BRIEF_CODES)


@pytest.mark.django_db
def test_reimport_keeps_owners_and_themes_curated_by_staff(messy_brief):
    recommendation = messy_brief.recommendations.get(code="EI-2024-1.2")
    recommendation.ownerships.all().delete()
    Ownership.objects.create(
        recommendation=recommendation,
        agency=Agency.objects.get(acronym="DOJ"),
        role=Ownership.Role.LEAD,
    )
    recommendation.themes.set([Theme.objects.create(name="Courts")])
    result = import_sample(read_sample(MESSY_BRIEF))
    assert len(result.unchanged) == len(MESSY_BRIEF_CODES)
    assert owners(messy_brief, "1.2") == ("DOJ", [])
    assert [t.name for t in recommendation.themes.all()] == ["Courts"]
    assert result.leads["EI-2024-1.2"].acronym == "DOJ"


@pytest.mark.django_db
def test_reimport_withdraws_recommendations_it_no_longer_has_and_keeps_them(messy_brief):
    shortened = read_sample(MESSY_BRIEF).split("#### **3.")[0]
    result = import_sample(shortened)
    assert [r.code for r in result.withdrawn] == ["EI-2024-3", "EI-2024-3.1"]
    assert Recommendation.objects.filter(code__startswith="EI-2024-3").count() == 2


@pytest.mark.django_db
def test_new_recommendations_are_published_as_the_argument_says_existing_ones_keep_theirs():
    text = read_sample(MESSY_BRIEF)
    import_sample(text.split("#### **3.")[0], publish_new=False)
    import_sample(text, publish_new=True)
    published = dict(Recommendation.objects.values_list("code", "is_published"))
    assert published["EI-2024-1"] is False
    assert published["EI-2024-3.1"] is True


@pytest.mark.django_db
def test_reimport_updates_given_metadata_and_keeps_the_rest(messy_brief):
    messy_brief.title = "Retitled by staff"
    messy_brief.save()
    import_sample(read_sample(MESSY_BRIEF), url="https://example.org/brief")
    messy_brief.refresh_from_db()
    assert messy_brief.url == "https://example.org/brief"
    assert messy_brief.title == "Retitled by staff"


# --- Dry run -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dry_run_writes_nothing_but_reports_what_it_would_do():
    result = import_sample(read_sample(MESSY_BRIEF), dry_run=True)
    assert result.dry_run
    assert len(result.created) == len(MESSY_BRIEF_CODES)
    assert result.leads["EI-2024-1.2"].acronym == "Congress"
    assert not Document.objects.exists()
    assert not Recommendation.objects.exists()
    assert not Publisher.objects.exists()
    assert not Theme.objects.exists()
    assert not Agency.objects.exists()


@pytest.mark.django_db
def test_dry_run_of_a_reimport_reports_the_update_and_leaves_the_text(messy_brief):
    edited = read_sample(MESSY_BRIEF).replace("Work with Mexico.", "Work closely with Mexico.")
    result = import_sample(edited, dry_run=True)
    assert [r.code for r in result.updated] == ["EI-2024-3", "EI-2024-3.1"]
    assert messy_brief.recommendations.get(code="EI-2024-3").text == "Work with Mexico."


# --- CSV -----------------------------------------------------------------------------------

CSV_TEXT = """code,parent_code,section,title,text,note,lead_agency,supporting_agencies,themes,\
addressed_to,priority
CSV-1,,Pathways,,Expand parole for families.,Context here.,USCIS,DOS; Congress,Legal pathways;\
 Family unity,,yes
CSV-1.1,CSV-1,Pathways,Short,Fund parole processing.,,Congress,U.S. Citizenship and Immigration \
Services,,congress,
"""


@pytest.mark.django_db
def test_csv_import_sets_owners_themes_parent_priority_and_addressee():
    result = import_sample(CSV_TEXT, code="CSV", filename="recs.csv", title="From a sheet")
    document = result.document
    assert local_codes(document) == ["1", "1.1"]
    assert owners(document, "1") == ("USCIS", ["Congress", "DOS"])
    assert owners(document, "1.1") == ("Congress", ["USCIS"])
    top, child = document.recommendations.all()
    assert top.is_priority and not child.is_priority
    assert top.addressed_to == Recommendation.AddressedTo.AGENCY
    assert child.parent == top
    assert child.title == "Short"
    assert top.title == "Expand parole for families"
    assert top.note == "Context here."
    assert {t.name for t in top.themes.all()} == {"Legal pathways", "Family unity"}


@pytest.mark.django_db
def test_csv_reimport_replaces_owners_and_themes_set_by_staff():
    import_sample(CSV_TEXT, code="CSV", filename="recs.csv", title="From a sheet")
    recommendation = Recommendation.objects.get(code="CSV-1")
    recommendation.ownerships.update(role=Ownership.Role.SUPPORTING)
    recommendation.themes.clear()
    result = import_sample(CSV_TEXT, code="CSV", filename="recs.csv")
    assert [r.code for r in result.updated] == ["CSV-1"]
    assert owners(result.document, "1") == ("USCIS", ["Congress", "DOS"])
    assert recommendation.themes.count() == 2


@pytest.mark.django_db
def test_csv_export_then_import_round_trips(messy_brief):
    curated = messy_brief.recommendations.get(code="EI-2024-2.1")
    curated.is_priority = True
    curated.save()
    Ownership.objects.create(
        recommendation=curated, agency=Agency.objects.get(acronym="HHS"), role="supporting"
    )
    exported = export_csv(messy_brief.recommendations.all())

    result = import_sample(exported, code="EI-COPY", filename="export.csv", title="Copy")

    assert len(result.created) == len(MESSY_BRIEF_CODES)
    assert export_csv(result.document.recommendations.all()) == exported
    copied = {r.code: owners_of(r) for r in result.document.recommendations.all()}
    assert copied == {r.code: owners_of(r) for r in messy_brief.recommendations.all()}
    assert copied["EI-2024-2.1"] == ("DHS", ["HHS"])
    restored = result.document.recommendations.get(code="EI-2024-2.1")
    assert restored.is_priority
    assert restored.parent.code == "EI-2024-2"
    assert restored.note == ""
    assert result.document.recommendations.get(code="EI-2024-2.3").note.startswith(
        "The program covers"
    )


# Cells a spreadsheet would run as formulas, including ones already escaped by hand.
FORMULA_CELLS = ['=HYPERLINK("http://example.org","Click")', "+1+1", "-2+3", "@SUM(A1)", "'=x"]


@pytest.mark.django_db
def test_csv_export_neutralises_formulas_and_import_gives_them_back(messy_brief):
    recommendations = list(messy_brief.recommendations.order_by("pk"))
    for recommendation, formula in zip(recommendations, FORMULA_CELLS, strict=False):
        recommendation.title = formula
        recommendation.text = f"{formula} should be read as text"
        recommendation.note = formula
        recommendation.save()
    Agency.objects.create(name="@Agency of formulas")
    Ownership.objects.create(
        recommendation=recommendations[0],
        agency=Agency.objects.get(name="@Agency of formulas"),
        role=Ownership.Role.SUPPORTING,
    )
    exported = export_csv(messy_brief.recommendations.all())

    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert '\'=HYPERLINK("http://example.org","Click")' in cells
    assert "''=x" in cells
    result = import_sample(exported, code="EI-COPY", filename="export.csv", title="Copy")
    copied = result.document.recommendations.order_by("pk")
    assert [(r.title, r.text, r.note) for r in copied] == [
        (r.title, r.text, r.note) for r in messy_brief.recommendations.order_by("pk")
    ]
    assert owners_of(copied[0])[1][-1] == "@Agency of formulas"
    assert export_csv(copied) == exported


@pytest.mark.django_db
def test_a_hand_made_csv_with_a_leading_apostrophe_keeps_it_unless_it_guards_a_formula():
    text = "code,text\nX-1,'Til the rule changes: DHS should act\nX-2,'=1+1\n"
    result = import_sample(text, code="X", filename="hand.csv", title="By hand")
    assert [r.text for r in result.document.recommendations.order_by("pk")] == [
        "'Til the rule changes: DHS should act",
        "=1+1",
    ]


@pytest.mark.parametrize(
    ("csv_text", "error"),
    [
        ("code,title\nX-1,Do it\n", "lacks the required column"),
        ("code,text,colour\nX-1,Do it.,red\n", "Unknown CSV column"),
        ("code,text\nX-1,Do it.\nX-1,Again.\n", "Row 3: code X-1 repeats row 2"),
        ("code,parent_code,text\nX-1.1,X-1,Do it.\nX-1,,Parent.\n", "must come before"),
        ("code,text,priority\nX-1,Do it.,maybe\n", "priority must be yes or no"),
        ("code,text,addressed_to\nX-1,Do it.,everyone\n", "addressed_to must be one of"),
    ],
)
@pytest.mark.django_db
def test_csv_that_makes_no_sense_is_refused_and_nothing_written(csv_text, error):
    with pytest.raises(DocumentImportError, match=error):
        import_sample(csv_text, filename="bad.csv", title="Bad")
    assert not Document.objects.exists()


# --- The management command ----------------------------------------------------------------


@pytest.mark.django_db
def test_command_imports_a_report_and_lists_new_recommendations_when_verbose():
    output = run_command(
        SAMPLES_DIR / MESSY_BRIEF,
        "--publisher",
        "Example Institute",
        "--published-on",
        "2024-03-01",
        "--verbosity",
        "2",
    )
    assert "Read as markdown: new document EI-2024, Protecting People on the Move." in output
    assert "+ EI-2024-1.2  lead Congress  Fund USCIS to hire more asylum officers" in output
    assert f"{len(MESSY_BRIEF_CODES)} created, 0 updated, 0 unchanged, 0 withdrawn." in output
    assert Recommendation.objects.filter(is_published=True).count() == len(MESSY_BRIEF_CODES)


@pytest.mark.django_db
def test_command_dry_run_says_so_and_writes_nothing():
    output = run_command(
        SAMPLES_DIR / MESSY_BRIEF, "--code", "EI-2024", "--publisher", "EI", "--dry-run"
    )
    assert f"{len(MESSY_BRIEF_CODES)} created" in output
    assert "Dry run: nothing was written." in output
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_command_dry_run_prints_the_whole_proposal_as_a_tree():
    output = run_command(
        SAMPLES_DIR / MESSY_BRIEF, "--code", "EI-2024", "--publisher", "EI", "--dry-run"
    )
    tree = [line for line in output.splitlines() if re.match(r"[+~ ] +EI-2024-", line)]
    assert len(tree) == len(MESSY_BRIEF_CODES)
    assert "+   EI-2024-1.2  [Congress" in output  # a child, indented under its parent
    assert "Fund USCIS to hire more asylum officers" in output
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_command_json_gives_the_proposal_as_data_and_writes_nothing_in_a_dry_run():
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "import_document", str(SAMPLES_DIR / MESSY_BRIEF), "--code", "EI-2024",
        "--publisher", "EI", "--dry-run", "--json", stdout=stdout, stderr=stderr,
    )  # fmt: skip
    data = json.loads(stdout.getvalue())
    assert data["dry_run"] and data["document"]["code"] == "EI-2024"
    items = {item["code"]: item for item in data["recommendations"]}
    assert list(items) == [f"EI-2024-{code}" for code in MESSY_BRIEF_CODES]
    child = items["EI-2024-1.2"]
    assert child["parent"] == "EI-2024-1"
    assert child["outcome"] == "created"
    assert child["lead"] == "Congress"
    assert child["text"].startswith("Fund USCIS to hire more asylum officers")
    assert data["summary"].startswith(f"{len(MESSY_BRIEF_CODES)} created")
    assert "Importing" in stderr.getvalue()
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_command_draft_leaves_new_recommendations_unpublished():
    run_command(SAMPLES_DIR / SHORT_OP_ED, "--code", "OP-2024", "--publisher", "EI", "--draft")
    assert Recommendation.objects.count() == 3
    assert not Recommendation.objects.filter(is_published=True).exists()
    assert Document.objects.get().kind == Document.Kind.OP_ED


@pytest.mark.django_db
def test_command_needs_a_code_or_a_publication_date():
    with pytest.raises(CommandError, match="Give a document code"):
        run_command(SAMPLES_DIR / MESSY_BRIEF, "--publisher", "Example Institute")


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("empty.md", b"  \n\n", "empty"),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("latin1.md", "## 1. Acción rápida\n".encode("latin-1"), "not UTF-8"),
        ("plain.md", b"# A title\n\nNo numbered sections here.\n", "No recommendations"),
        ("parent.csv", b"code,parent_code,text\nX-1,X-9,Do it.\n", "unknown parent code X-9"),
        (
            "agency.csv",
            b"code,text,lead_agency\nX-1,Do it.,USCIS\nX-2,Do that.,Ministry of Magic\n",
            "Row 3 .*unknown agency 'Ministry of Magic'",
        ),
    ],
)
@pytest.mark.django_db
def test_command_refuses_bad_input_and_writes_nothing(tmp_path, name, content, error):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CommandError, match=error):
        run_command(path, "--code", "X", "--publisher", "Example Institute", "--title", "X")
    assert not Document.objects.exists()
    assert not Recommendation.objects.exists()


@pytest.mark.django_db
def test_command_refuses_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run_command(tmp_path / "nowhere.md", "--code", "X", "--publisher", "Example Institute")
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_a_csv_with_a_header_and_no_rows_is_refused_and_writes_nothing(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("code,text\n", encoding="utf-8")
    with pytest.raises(CommandError, match="no recommendations"):
        call_command("import_document", str(path), "--code", "ORG-1", "--publisher", "Org")
    assert not Document.objects.exists()


def test_an_op_ed_sentence_about_a_person_between_steps_does_not_end_the_steps():
    text = (
        "Three steps for the region\n\n"
        "First, the United States must fund shelters along the route.\n\n"
        "Vice President Kamala Harris has been asked to lead this work.\n\n"
        "Second, Congress should fund legal aid for people seeking asylum.\n\n"
        "Finally, the administration must expand family reunification parole.\n\n"
        "Jane Doe is a policy analyst."
    )
    parsed = parse_op_ed(text, document_code="X-2025")
    assert [r.code for r in parsed.recommendations] == ["X-2025-1", "X-2025-2", "X-2025-3"]
    assert "Kamala Harris" in parsed.recommendations[0].note
    assert parsed.author == "Jane Doe"


def test_op_ed_questions_opening_with_ordinals_are_not_steps():
    questions = (
        "Three questions for the White House\n\n"
        "First, why has the administration not restored asylum at the border?\n\n"
        "Second, who will pay for the shelters? Nobody has said.\n\n"
        "Third, when will separated families be reunited?\n\n"
    )
    with pytest.raises(DocumentImportError, match="No ordinal steps"):
        parse_op_ed(questions, document_code="X")
    answers = (
        "First, Congress must fund shelters along the route.\n\n"
        "Second, USCIS should reunite families within a year.\n"
    )
    parsed = parse_op_ed(questions + answers, document_code="X")
    assert [r.text for r in parsed.recommendations] == [
        "Congress must fund shelters along the route.",
        "USCIS should reunite families within a year.",
    ]
