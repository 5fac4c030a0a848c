"""Who a recommendation is addressed to: the agency directory, the owner rules, the addressee
of a document and the "owner not found" flag."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError
from django.urls import reverse

from tests.factories import PublisherFactory
from tests.support import review_data, review_url
from tests.support.seeds import HILL_OP_ED, WRC_BRIEF, read_seed, run_command
from tracker.directory import AGENCY_DIRECTORY, ensure_agency_directory
from tracker.importing import (
    BY_DOCUMENT,
    BY_HEADING,
    BY_LEAD_IN,
    BY_NOTE,
    BY_OWN_WORK,
    BY_PARENT,
    BY_SUBJECT,
    OWNER_NOT_FOUND,
    AgencyIndex,
    DocumentImportError,
    ImportFlag,
    ParsedRecommendation,
    detect_addressee,
    detect_format,
    detect_owners,
    import_document,
    parse_document,
)
from tracker.models import Agency, Ownership

pytestmark = pytest.mark.django_db

KIND_TO_CONGRESS = "KIND calls on Congress to:"
# Fifteen executive departments, by the acronym the directory gives them.
DEPARTMENTS = {
    "USDA": "Department of Agriculture",
    "DOC": "Department of Commerce",
    "DOD": "Department of Defense",
    "ED": "Department of Education",
    "DOE": "Department of Energy",
    "HHS": "Department of Health and Human Services",
    "DHS": "Department of Homeland Security",
    "HUD": "Department of Housing and Urban Development",
    "DOJ": "Department of Justice",
    "DOL": "Department of Labor",
    "DOS": "Department of State",
    "DOI": "Department of the Interior",
    "Treasury": "Department of the Treasury",
    "DOT": "Department of Transportation",
    "VA": "Department of Veterans Affairs",
}
# What the directory held before it grew: staff and the demo rely on these names.
EARLIER_AGENCIES = {
    "WH": "The White House",
    "Congress": "Congress",
    "DHS": "Department of Homeland Security",
    "USCIS": "U.S. Citizenship and Immigration Services",
    "CBP": "U.S. Customs and Border Protection",
    "ICE": "U.S. Immigration and Customs Enforcement",
    "DOS": "Department of State",
    "PRM": "Bureau of Population, Refugees, and Migration",
    "USAID": "U.S. Agency for International Development",
    "DOJ": "Department of Justice",
    "Treasury": "Department of the Treasury",
    "HHS": "Department of Health and Human Services",
    "DOL": "Department of Labor",
    "COMAR": "Mexican Commission for Refugee Assistance",
    "UNHCR": "UN Refugee Agency",
    "IOM": "International Organization for Migration",
}


@pytest.fixture
def index():
    ensure_agency_directory()
    return AgencyIndex(Agency.objects.all())


def name(agency):
    return agency.display_name if agency else None


def owners_for(index, text, *, lead_in="", section_title="", default_lead=None):
    parsed = ParsedRecommendation(
        code="X-1", text=text, lead_in=lead_in, section_title=section_title
    )
    owners = detect_owners(parsed, index=index, default_lead=default_lead)
    return name(owners.lead), [name(a) for a in owners.supporting], owners.found_by


def stored_owners(recommendation):
    ownerships = recommendation.ownerships.select_related("agency")
    leads = [o.agency.display_name for o in ownerships if o.role == Ownership.Role.LEAD]
    supporting = [o.agency.display_name for o in ownerships if o.role == Ownership.Role.SUPPORTING]
    return leads, sorted(supporting)


# --- The directory -------------------------------------------------------------------------


def test_directory_holds_the_fifteen_departments_and_keeps_earlier_names(index):
    for acronym, department in DEPARTMENTS.items():
        assert index.find(acronym).name == department
    for acronym, agency_name in EARLIER_AGENCIES.items():
        assert index.find(acronym).name == agency_name
    assert len(AGENCY_DIRECTORY) >= 55
    assert Agency.objects.count() == len(AGENCY_DIRECTORY)


@pytest.mark.parametrize(
    "child, parents",
    [
        ("USBP", ["CBP", "DHS"]),
        ("OFO", ["CBP", "DHS"]),
        ("ERO", ["ICE", "DHS"]),
        ("HSI", ["ICE", "DHS"]),
        ("FEMA", ["DHS"]),
        ("CRCL", ["DHS"]),
        ("BIA", ["EOIR", "DOJ"]),
        ("FBI", ["DOJ"]),
        ("ORR", ["ACF", "HHS"]),
        ("CDC", ["HHS"]),
        ("USUN", ["DOS"]),
        ("OMB", ["WH"]),
        ("WHD", ["DOL"]),
        ("OFAC", ["Treasury"]),
        ("INM", ["Government of Mexico"]),
        ("COMAR", ["Government of Mexico"]),
    ],
)
def test_sub_agencies_sit_under_their_parents(index, child, parents):
    assert [name(a) for a in index.ancestors(index.find(child))] == parents


@pytest.mark.parametrize(
    "alias, agency",
    [
        ("State Department", "DOS"),
        ("State", "DOS"),
        ("Justice", "DOJ"),
        ("Labor", "DOL"),
        ("Pentagon", "DOD"),
        ("Executive Office of the President", "WH"),
        ("EOP", "WH"),
        ("the Senate", "U.S. Senate"),
        ("appropriators", "Congress"),
        ("immigration courts", "EOIR"),
        ("US Mission to the UN", "USUN"),
        ("Consular Affairs", "Bureau of Consular Affairs"),
        ("Border Patrol", "USBP"),
        ("Patrulla Fronteriza", "USBP"),
        ("Mexico", "Government of Mexico"),
        ("Gobierno de México", "Government of Mexico"),
        ("Instituto Nacional de Migración", "INM"),
        ("El Salvador", "Government of El Salvador"),
        ("ACNUR", "UNHCR"),
        ("OIM", "IOM"),
        ("UNICEF", "UNICEF"),
        ("World Food Program", "WFP"),
        ("OHCHR", "OHCHR"),
    ],
)
def test_agencies_are_found_by_acronym_alias_short_or_spanish_name(index, alias, agency):
    assert name(index.find(alias)) == agency


def test_running_text_finds_names_but_not_common_words_or_places(index):
    def named(text):
        return [name(agency) for agency in index.agencies_in(text)]

    assert named("Shelters in Mexico and the state of Texas need labor inspectors.") == []
    assert named("Annunciation House and Texas Senate Bill 4.") == []
    assert named("The Pentagon and the Office of Refugee Resettlement agree.") == ["DOD", "ORR"]
    # A sub-agency named with its parent stands alone.
    assert named("CBP's Border Patrol and the Department of Homeland Security.") == ["USBP"]
    assert named("the Administration for Children and Families") == ["ACF"]
    assert named("the President of Guatemala met the President of the United States") == ["WH"]


def test_an_earlier_directory_edited_by_staff_is_completed_not_changed(db):
    Agency.objects.create(name="Homeland Security (DHS)", acronym="DHS", aliases="DHS")
    ensure_agency_directory()
    dhs = Agency.objects.get(acronym="DHS")
    assert dhs.name == "Homeland Security (DHS)"
    assert Agency.objects.get(acronym="FEMA").parent == dhs


# --- Rule 1: the subject leads -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, lead",
    [
        ("The Director of ICE should end the detention of families.", "ICE"),
        ("The Secretary of Homeland Security should ensure that ICE releases children.", "DHS"),
        ("USCIS should hire more asylum officers to reduce the backlog.", "USCIS"),
        ("The Commissioner of CBP should track deaths in custody (Recommendation 1).", "CBP"),
        ("La COMAR debe contratar más personal para atender las solicitudes.", "COMAR"),
        ("El Gobierno de México debe garantizar el acceso al asilo.", "Government of Mexico"),
        ("El Director de ICE debe liberar a las familias detenidas.", "ICE"),
        ("El Secretario de Estado debe ampliar el reasentamiento.", "DOS"),
        ("The U.S. government should restore asylum at the border.", "WH"),
    ],
)
def test_the_agency_that_is_the_subject_leads(index, text, lead):
    # Even under a lead-in and a document addressed to someone else.
    found = owners_for(index, text, lead_in=KIND_TO_CONGRESS, default_lead=index.find("WH"))
    assert found[0] == lead
    assert found[2] == BY_SUBJECT


def test_the_subject_leads_and_other_agencies_named_support(index):
    assert owners_for(
        index, "USCIS and the State Department should develop a travel document with UNHCR."
    ) == ("USCIS", ["DOS", "UNHCR"], BY_SUBJECT)


# --- Rule 2: an imperative changing one agency's own work ----------------------------------


def test_an_imperative_naming_one_agency_whose_work_changes_is_led_by_it(index):
    text = "Double the number of immigration judges at EOIR."
    assert owners_for(index, text) == ("EOIR", [], BY_OWN_WORK)
    assert owners_for(index, text, lead_in=KIND_TO_CONGRESS)[0] == "EOIR"
    assert owners_for(index, "Duplicar el número de jueces de inmigración.")[0] == "EOIR"
    assert owners_for(index, "End ICE's use of solitary confinement.")[0] == "ICE"


@pytest.mark.parametrize(
    "text",
    [
        "Fund ORR's post-release services for every child.",
        "Negotiate with the government of Mexico to issue documents.",
        "Request that Congress fund integration programs.",
        "Increase funding to UNHCR for registration.",
        "Financiar los servicios de la ORR.",
    ],
)
def test_an_agency_receiving_money_orders_or_partnership_does_not_lead(index, text):
    lead, supporting, found_by = owners_for(index, text, default_lead=index.find("WH"))
    assert (lead, found_by) == ("WH", BY_DOCUMENT)
    assert len(supporting) == 1


# --- Rule 3: the lead-in's or the subsection's addressee -----------------------------------


def test_the_lead_in_addressee_leads_and_the_recipient_supports(index):
    assert owners_for(index, "Fund ORR's post-release services.", lead_in=KIND_TO_CONGRESS) == (
        "Congress",
        ["ORR"],
        BY_LEAD_IN,
    )
    assert owners_for(
        index,
        "Fund PRM to help strengthen shelters.",
        lead_in="The administration should request that Congress:",
    )[:2] == ("Congress", ["PRM"])
    assert owners_for(
        index, "Financiar los servicios de la ORR.", lead_in="Instamos al Congreso a:"
    )[:2] == ("Congress", ["ORR"])
    assert owners_for(index, "Keep shelters open.", lead_in="We urge Mexico to:")[0] == (
        "Government of Mexico"
    )


@pytest.mark.parametrize(
    "heading, lead",
    [
        ("To the Department of State", "DOS"),
        ("To Congress", "Congress"),
        ("Recommendations for DHS:", "DHS"),
        ("To State", "DOS"),
        ("To the Government of Mexico", "Government of Mexico"),
        ("Al Congreso", "Congress"),
        ("Al Gobierno de México", "Government of Mexico"),
        ("Para la COMAR", "COMAR"),
        ("To the Department of State and USAID", "DOS"),
    ],
)
def test_the_subsection_heading_addressee_leads(index, heading, lead):
    found = owners_for(index, "Expand refugee processing in the region.", section_title=heading)
    assert found == (lead, [], BY_HEADING)


def test_a_heading_that_is_not_addressed_to_anyone_gives_no_lead(index):
    for heading in (
        "A regional approach to migration",
        "A path forward with Mexico",
        "For a safer border, fund CBP",
        "Continue to act",
    ):
        assert owners_for(index, "Expand processing.", section_title=heading)[0] is None


def test_the_lead_in_comes_before_the_heading(index):
    found = owners_for(
        index, "Expand processing.", lead_in=KIND_TO_CONGRESS, section_title="To DHS"
    )
    assert found[0] == "Congress"


# --- Rules 4 and 5: the document's addressee, or no lead at all ----------------------------


def test_a_title_ask_is_led_by_the_subject_its_note_calls_on(index):
    def title_owners(title, note, **kwargs):
        parsed = ParsedRecommendation(code="2", text=title, note=note)
        owners = detect_owners(parsed, index=index, default_lead=None, **kwargs)
        return name(owners.lead), [name(a) for a in owners.supporting], owners.found_by

    note = (
        "Courts move faster when the facts are prepared. The Department of Justice should "
        "fund appointed counsel through EOIR."
    )
    assert title_owners("Give every asylum seeker a lawyer", note) == ("DOJ", ["EOIR"], BY_NOTE)
    vague = "Shelters are full. The United States should help fund COMAR, with UNHCR."
    assert title_owners("Support asylum in the region.", vague) == (None, ["COMAR", "UNHCR"], "")
    # An ask naming its own agency keeps it; its note only explains.
    assert title_owners("Fund PRM to help shelters.", "COMAR needs to grow.")[:2] == (None, ["PRM"])


def test_a_sub_ask_naming_no_one_is_led_by_the_agency_its_parent_names(index):
    parent = ParsedRecommendation(code="1", text="PRM should reopen processing in the region.")
    child = ParsedRecommendation(
        code="1.1", text="Prioritise referrals of families.", parent_code="1"
    )
    owners = detect_owners(child, index=index, default_lead=index.find("WH"), ancestors=[parent])
    assert (name(owners.lead), owners.found_by) == ("PRM", BY_PARENT)
    # A parent led only by the document's addressee passes nothing down: the addressee leads.
    vague_parent = ParsedRecommendation(code="1", text="Protect people in the pipeline.")
    owners = detect_owners(
        child, index=index, default_lead=index.find("WH"), ancestors=[vague_parent]
    )
    assert (name(owners.lead), owners.found_by) == ("WH", BY_DOCUMENT)


def test_an_imported_sub_bullet_takes_its_parents_agency():
    markdown = (
        "# Resettlement\n\nWe recommend the following.\n\n"
        "- **Restore refugee admissions to a ceiling of 125,000.**\n"
        "  - PRM should reopen processing in Latin America.\n"
        "    - Prioritise referrals of refugees with family in the United States.\n"
        "  - The White House should set the ceiling early.\n"
    )
    result = import_document(markdown, code="RRA-1", publisher="RRA", fmt="markdown")
    leads = {ask.text: name(result.leads[ask.code]) for ask in result.created}
    assert leads["Prioritise referrals of refugees with family in the United States."] == "PRM"
    assert leads["Restore refugee admissions to a ceiling of 125,000."] is None


def test_a_part_of_the_lead_named_only_by_its_people_does_not_support(index):
    hire = "The Department of Justice should hire more immigration judges."
    assert owners_for(index, hire)[:2] == ("DOJ", [])
    # Named as an agency of its own, it supports.
    fund = "The Department of Justice should fund counsel through EOIR."
    assert owners_for(index, fund)[:2] == ("DOJ", ["EOIR"])
    # Under another lead, the immigration judges are EOIR's.
    assert owners_for(index, "Congress should fund immigration judges.")[:2] == (
        "Congress",
        ["EOIR"],
    )


def test_a_country_asked_to_act_supports_but_a_country_as_a_place_does_not(index):
    helped = "PRM should fund UNHCR to help Mexico register asylum claims."
    assert owners_for(index, helped)[:2] == ("PRM", ["UNHCR", "Government of Mexico"])
    place = "USAID should fund integration programmes in southern Mexico."
    assert owners_for(index, place)[:2] == ("USAID", [])


def test_an_agency_named_only_as_where_people_are_held_does_not_support(index):
    review = "The Secretary of Homeland Security should review every death in ICE custody."
    assert owners_for(index, review)[:2] == ("DHS", [])
    release = "DHS should release children from ORR care and work with ICE."
    assert owners_for(index, release)[:2] == ("DHS", ["ICE"])


def test_the_document_addressee_leads_where_the_text_names_no_one(index):
    assert owners_for(index, "Expand legal pathways.", default_lead=index.find("WH")) == (
        "WH",
        [],
        BY_DOCUMENT,
    )
    assert owners_for(index, "Expand legal pathways.") == (None, [], "")


def test_a_document_addresses_the_agency_most_often_its_subject_or_called_on(index):
    text = (
        "The Biden administration has expanded pathways. Congress can create visas.\n\n"
        "- **The administration should improve the program.**\n"
        "- **The Administration must also act.** We urge the administration to listen.\n"
    )
    assert name(detect_addressee(text, index=index)) == "WH"
    assert name(detect_addressee("Instamos al Congreso a actuar.", index=index)) == "Congress"
    assert detect_addressee("Shelters in Mexico are full.", index=index) is None
    described = "ICE will detain more people. Congress should stop it."
    assert name(detect_addressee(described, index=index)) == "Congress"


def test_a_document_asking_as_much_of_several_agencies_addresses_none_of_them(index):
    memo = (
        "DHS should restore parole. The State Department should fund host countries. "
        "The White House should convene the region. USAID should count returns."
    )
    assert detect_addressee(memo, index=index) is None
    assert name(detect_addressee(memo + " We urge DHS to act.", index=index)) == "DHS"


def test_a_name_the_directory_writes_with_an_article_is_found_without_it(index):
    spanish = "Instamos al gobierno de Estados Unidos a:"
    assert owners_for(index, "Financiar albergues.", lead_in=spanish)[0] == "WH"
    assert owners_for(index, "US government should restore asylum.")[0] == "WH"


@pytest.mark.seeds
def test_the_wrc_brief_and_the_op_ed_address_the_white_house_which_leads_what_names_no_one(
    index,
):
    brief, op_ed = read_seed(WRC_BRIEF), read_seed(HILL_OP_ED)
    assert name(detect_addressee(brief, index=index)) == "WH"
    assert name(detect_addressee(op_ed, index=index)) == "WH"
    parsed = parse_document(
        brief, fmt=detect_format(brief, filename=WRC_BRIEF), document_code="WRC-2024"
    )
    wh = index.find("WH")
    found = {
        r.code.removeprefix("WRC-2024-"): detect_owners(r, index=index, default_lead=wh)
        for r in parsed.recommendations
    }
    assert (name(found["1.1"].lead), found["1.1"].found_by) == ("WH", BY_SUBJECT)
    assert (name(found["2.1"].lead), found["2.1"].found_by) == ("WH", BY_LEAD_IN)
    for code in ("1", "1.5", "3.1", "3.2", "4", "5"):
        assert (name(found[code].lead), found[code].found_by) == ("WH", BY_DOCUMENT)


STATEMENT = """# Protect children now

## 1. Protect children in custody.

- **Expand legal services for children in custody.**
- **End ICE's use of family detention.**
"""

SPANISH_STATEMENT = """# Proteger a las personas refugiadas

## 1. Fortalecer el sistema de asilo.

Instamos al Congreso a:

- **Financiar los servicios de la ORR para niñas y niños.**
- **La COMAR debe contratar más personal para atender las solicitudes.**
"""


def import_statement(text=STATEMENT, **options):
    defaults = {"code": "ST-2024", "publisher": "Example Coalition", "filename": "st.md"}
    return import_document(text, **defaults | options)


def test_an_owner_not_found_is_flagged_never_the_white_house():
    result = import_statement()
    document = result.document
    assert document.addressee is None
    assert result.flags == [
        ImportFlag("ST-2024-1", OWNER_NOT_FOUND),
        ImportFlag("ST-2024-1.1", OWNER_NOT_FOUND),
    ]
    assert str(result.flags[0]) == "ST-2024-1: owner not found"
    assert result.leads["ST-2024-1.1"] is None
    assert stored_owners(document.recommendations.get(code="ST-2024-1.1")) == ([], [])
    assert stored_owners(document.recommendations.get(code="ST-2024-1.2")) == (["ICE"], [])
    assert not Ownership.objects.filter(agency__acronym="WH").exists()


def test_the_addressee_given_leads_where_the_text_names_no_one():
    result = import_statement(addressee="Congress")
    assert result.document.addressee.acronym == "Congress"
    assert result.flags == []
    led = {code: name(lead) for code, lead in result.leads.items()}
    assert led == {"ST-2024-1": "Congress", "ST-2024-1.1": "Congress", "ST-2024-1.2": "ICE"}


def test_a_spanish_statement_gets_its_owners_from_the_lead_in_and_the_subject():
    document = import_statement(SPANISH_STATEMENT, code="ES-2024").document
    assert stored_owners(document.recommendations.get(code="ES-2024-1.1")) == (
        ["Congress"],
        ["ORR"],
    )
    assert stored_owners(document.recommendations.get(code="ES-2024-1.2")) == (["COMAR"], [])


def test_an_unknown_addressee_is_refused_and_nothing_is_written():
    with pytest.raises(DocumentImportError, match="Unknown addressee 'Nowhere'"):
        import_statement(addressee="Nowhere")
    assert not Agency.objects.exists()


# --- The command and the upload form -------------------------------------------------------


@pytest.fixture
def statement_file(tmp_path):
    path = tmp_path / "statement.md"
    path.write_text(STATEMENT, encoding="utf-8")
    return path


def test_the_command_takes_the_addressee(statement_file):
    output = run_command(
        statement_file,
        "--code",
        "ST-2024",
        "--publisher",
        "Example Coalition",
        "--addressee",
        "State Department",
        "-v",
        "2",
    )
    assert "lead DOS" in output
    assert "owner not found" not in output
    recommendation = Agency.objects.get(acronym="DOS").recommendations.get(code="ST-2024-1.1")
    assert stored_owners(recommendation) == (["DOS"], [])


def test_the_command_prints_the_owners_it_could_not_find(statement_file):
    output = run_command(statement_file, "--code", "ST-2024", "--publisher", "Example Coalition")
    assert "To review (2):" in output
    assert "ST-2024-1.1: owner not found" in output


def test_the_command_refuses_an_unknown_addressee(statement_file):
    with pytest.raises(CommandError, match="Unknown addressee"):
        run_command(statement_file, "--code", "ST-2024", "--publisher", "X", "--addressee", "Mars")


def test_the_upload_form_takes_the_addressee_and_shows_flags(admin_client):
    publisher = PublisherFactory(name="Example Coalition")
    url = reverse("admin:tracker_document_import")
    assert 'name="addressee"' in admin_client.get(url).text

    def upload(code, **fields):
        form = {
            "code": code,
            "publisher": publisher.pk,
            "file": SimpleUploadedFile("s.md", STATEMENT.encode()),
        }
        return admin_client.post(url, form | fields, follow=True)

    flagged = upload("ST-2024").text
    assert "<strong>Check:</strong> owner not found" in flagged
    addressed = upload("ST-2025", addressee="DHS")
    assert "owner not found" not in addressed.text
    proposal = addressed.context["original"]
    admin_client.post(review_url(proposal), review_data(proposal))
    recommendation = Agency.objects.get(acronym="DHS").recommendations.get(code="ST-2025-1.1")
    assert stored_owners(recommendation) == (["DHS"], [])
