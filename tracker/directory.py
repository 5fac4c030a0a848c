"""The reference list of agencies that documents address, with the names they go by.

Importers detect owners from these names, so the directory must exist before a document is
imported; `ensure_agency_directory()` creates or completes it and leaves staff edits alone.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q

from .models import Agency


@dataclass(frozen=True)
class AgencyEntry:
    name: str
    acronym: str = ""
    parent: str = ""  # acronym of the parent agency
    kind: str = Agency.Kind.US_GOVERNMENT
    aliases: tuple[str, ...] = field(default_factory=tuple)


# The White House stands for "the administration": documents address the executive as a whole.
WHITE_HOUSE = "WH"
CONGRESS = "Congress"
PARTNER = Agency.Kind.PARTNER


def government(country, adjective, *spanish, acronym=""):
    """A foreign government, with the ways English and Spanish texts name it."""
    return AgencyEntry(
        f"Government of {country}",
        acronym,
        kind=PARTNER,
        aliases=(
            f"government of {country}",
            f"{adjective} government",
            f"{country}'s government",
            f"Gobierno de {country}",
            *spanish,
        ),
    )


# Parents come before their children. Existing entries keep their names and acronyms: staff
# and the demo rely on them. Acronyms and one-word aliases match only as written.
AGENCY_DIRECTORY = (
    AgencyEntry(
        "The White House",
        WHITE_HOUSE,
        aliases=(
            "the administration",
            "the Biden administration",
            "the Biden-Harris administration",
            "the Obama administration",
            "the Trump administration",
            "White House",
            "Executive Office of the President",
            "EOP",
            "the President",
            "the President of the United States",
            "President Biden",
            "President Trump",
            "President Obama",
            "the Vice President",
            "Vice President Harris",
            "la Casa Blanca",
            "Casa Blanca",
            "la administración Biden",
            "el gobierno de Biden",
            "el presidente de Estados Unidos",
            "the US government",
            "the U.S. government",
            "the United States government",
            "the federal government",
            "el gobierno de Estados Unidos",
            "el gobierno estadounidense",
        ),
    ),
    AgencyEntry(
        "Office of Management and Budget",
        "OMB",
        parent=WHITE_HOUSE,
        aliases=("Oficina de Administración y Presupuesto",),
    ),
    AgencyEntry(
        "Congress",
        CONGRESS,
        aliases=(
            "US Congress",
            "U.S. Congress",
            "United States Congress",
            "Congressional appropriators",
            "appropriators",
            "the appropriations committees",
            "House and Senate appropriators",
            "Congreso",
            "el Congreso",
            "Congreso de Estados Unidos",
            "Congreso de los Estados Unidos",
        ),
    ),
    # No acronyms: "Senate Bill 4" and "Annunciation House" name neither chamber.
    AgencyEntry("U.S. Senate", parent=CONGRESS, aliases=("US Senate", "the Senate", "el Senado")),
    AgencyEntry(
        "U.S. House of Representatives",
        parent=CONGRESS,
        aliases=("House of Representatives", "Cámara de Representantes"),
    ),
    AgencyEntry(
        "Department of Homeland Security",
        "DHS",
        aliases=(
            "Homeland Security Department",
            "Homeland Security",
            "Secretary of Homeland Security",
            "Departamento de Seguridad Nacional",
        ),
    ),
    AgencyEntry(
        "U.S. Citizenship and Immigration Services",
        "USCIS",
        parent="DHS",
        aliases=(
            "United States Citizenship and Immigration Services",
            "Citizenship and Immigration Services",
            "Servicio de Ciudadanía e Inmigración",
        ),
    ),
    AgencyEntry(
        "U.S. Customs and Border Protection",
        "CBP",
        parent="DHS",
        aliases=(
            "Customs and Border Protection",
            "Oficina de Aduanas y Protección Fronteriza",
        ),
    ),
    AgencyEntry(
        "U.S. Border Patrol",
        "USBP",
        parent="CBP",
        aliases=("Border Patrol", "United States Border Patrol", "Patrulla Fronteriza"),
    ),
    AgencyEntry("Office of Field Operations", "OFO", parent="CBP"),
    AgencyEntry(
        "U.S. Immigration and Customs Enforcement",
        "ICE",
        parent="DHS",
        aliases=(
            "Immigration and Customs Enforcement",
            "Servicio de Inmigración y Control de Aduanas",
        ),
    ),
    AgencyEntry("Enforcement and Removal Operations", "ERO", parent="ICE"),
    AgencyEntry("Homeland Security Investigations", "HSI", parent="ICE"),
    AgencyEntry(
        "Federal Emergency Management Agency",
        "FEMA",
        parent="DHS",
        aliases=("Agencia Federal para el Manejo de Emergencias",),
    ),
    AgencyEntry(
        "Office for Civil Rights and Civil Liberties",
        "CRCL",
        parent="DHS",
        aliases=("DHS Office for Civil Rights and Civil Liberties",),
    ),
    AgencyEntry(
        "DHS Office of Inspector General",
        "DHS OIG",
        parent="DHS",
        aliases=("DHS Inspector General", "DHS OIG"),
    ),
    AgencyEntry(
        "Department of State",
        "DOS",
        aliases=(
            "State Department",
            "US Department of State",
            "U.S. Department of State",
            "Secretary of State",
            "Departamento de Estado",
            "Secretario de Estado",
            "Secretaria de Estado",
        ),
    ),
    AgencyEntry(
        "Bureau of Population, Refugees, and Migration",
        "PRM",
        parent="DOS",
        aliases=(
            "Bureau of Population, Refugees and Migration",
            "Oficina de Población, Refugiados y Migración",
        ),
    ),
    AgencyEntry(
        "U.S. Mission to the United Nations",
        "USUN",
        parent="DOS",
        aliases=(
            "US Mission to the United Nations",
            "U.S. Mission to the UN",
            "US Mission to the UN",
            "United States Mission to the United Nations",
            "US Ambassador to the United Nations",
            "U.S. Ambassador to the UN",
        ),
    ),
    AgencyEntry(
        "Bureau of Consular Affairs",
        parent="DOS",
        aliases=("Consular Affairs", "consular officers", "US consulates", "U.S. consulates"),
    ),
    AgencyEntry(
        "U.S. Agency for International Development",
        "USAID",
        aliases=(
            "Agency for International Development",
            "Agencia de los Estados Unidos para el Desarrollo Internacional",
        ),
    ),
    AgencyEntry(
        "Department of Justice",
        "DOJ",
        aliases=(
            "Justice Department",
            "Attorney General",
            "Departamento de Justicia",
            "Fiscal General de Estados Unidos",
        ),
    ),
    AgencyEntry(
        "Executive Office for Immigration Review",
        "EOIR",
        parent="DOJ",
        aliases=(
            "immigration courts",
            "immigration court",
            "immigration judges",
            "tribunales de inmigración",
            "cortes de inmigración",
            "jueces de inmigración",
        ),
    ),
    AgencyEntry("Board of Immigration Appeals", "BIA", parent="EOIR"),
    AgencyEntry("Federal Bureau of Investigation", "FBI", parent="DOJ"),
    AgencyEntry("Department of the Treasury", "Treasury", aliases=("Treasury Department",)),
    AgencyEntry(
        "Office of Foreign Assets Control",
        "OFAC",
        parent="Treasury",
        aliases=("Oficina de Control de Activos Extranjeros",),
    ),
    AgencyEntry(
        "Department of Health and Human Services",
        "HHS",
        aliases=(
            "Health and Human Services",
            "Secretary of Health and Human Services",
            "Departamento de Salud y Servicios Humanos",
        ),
    ),
    AgencyEntry(
        "Administration for Children and Families",
        "ACF",
        parent="HHS",
        # With the article, so "the administration" (the White House) does not match first.
        aliases=("the Administration for Children and Families",),
    ),
    AgencyEntry(
        "Office of Refugee Resettlement",
        "ORR",
        parent="ACF",
        aliases=("Oficina de Reasentamiento de Refugiados",),
    ),
    AgencyEntry(
        "Centers for Disease Control and Prevention",
        "CDC",
        parent="HHS",
        aliases=("Centers for Disease Control",),
    ),
    AgencyEntry(
        "Department of Labor",
        "DOL",
        aliases=("Labor Department", "Secretary of Labor", "Departamento de Trabajo"),
    ),
    AgencyEntry("Wage and Hour Division", "WHD", parent="DOL"),
    AgencyEntry(
        "Department of Agriculture",
        "USDA",
        aliases=("Agriculture Department", "U.S. Department of Agriculture"),
    ),
    AgencyEntry(
        "Department of Defense",
        "DOD",
        aliases=("Defense Department", "Pentagon", "DoD", "Secretary of Defense"),
    ),
    AgencyEntry("Department of Education", "ED", aliases=("Education Department",)),
    AgencyEntry("Department of Energy", "DOE", aliases=("Energy Department",)),
    AgencyEntry(
        "Department of Housing and Urban Development",
        "HUD",
        aliases=("Housing and Urban Development",),
    ),
    AgencyEntry("Department of Transportation", "DOT", aliases=("Transportation Department",)),
    AgencyEntry("Department of Commerce", "DOC", aliases=("Commerce Department",)),
    AgencyEntry(
        "Department of the Interior",
        "DOI",
        aliases=("Interior Department", "Department of Interior"),
    ),
    AgencyEntry(
        "Department of Veterans Affairs",
        "VA",
        aliases=("Veterans Affairs", "Department of Veterans' Affairs"),
    ),
    government(
        "Mexico",
        "Mexican",
        "gobierno de México",
        "gobierno mexicano",
        "Estado mexicano",
        "the President of Mexico",
        "the Mexican president",
    ),
    AgencyEntry(
        "Mexican Commission for Refugee Assistance",
        "COMAR",
        parent="Government of Mexico",
        kind=PARTNER,
        aliases=("Comisión Mexicana de Ayuda a Refugiados",),
    ),
    AgencyEntry(
        "National Migration Institute",
        "INM",
        parent="Government of Mexico",
        kind=PARTNER,
        aliases=("Instituto Nacional de Migración", "Mexico's National Migration Institute"),
    ),
    government("Guatemala", "Guatemalan", "gobierno de Guatemala", "gobierno guatemalteco"),
    government("Costa Rica", "Costa Rican", "gobierno de Costa Rica", "gobierno costarricense"),
    government("Honduras", "Honduran", "gobierno de Honduras", "gobierno hondureño"),
    government("El Salvador", "Salvadoran", "gobierno de El Salvador", "gobierno salvadoreño"),
    government("Colombia", "Colombian", "gobierno de Colombia", "gobierno colombiano"),
    government(
        "Panama", "Panamanian", "Gobierno de Panamá", "gobierno de Panamá", "gobierno panameño"
    ),
    government("Canada", "Canadian", "gobierno de Canadá", "gobierno canadiense"),
    AgencyEntry(
        "UN Refugee Agency",
        "UNHCR",
        kind=PARTNER,
        aliases=(
            "United Nations High Commissioner for Refugees",
            "United Nations High Commission for Refugees",
            "ACNUR",
            "Alto Comisionado de las Naciones Unidas para los Refugiados",
        ),
    ),
    AgencyEntry(
        "International Organization for Migration",
        "IOM",
        kind=PARTNER,
        aliases=(
            "International Organization on Migration",
            "UN Migration",
            "OIM",
            "Organización Internacional para las Migraciones",
        ),
    ),
    AgencyEntry(
        "United Nations Children's Fund",
        "UNICEF",
        kind=PARTNER,
        aliases=("Fondo de las Naciones Unidas para la Infancia",),
    ),
    AgencyEntry(
        "World Food Programme",
        "WFP",
        kind=PARTNER,
        aliases=("World Food Program", "UN World Food Programme", "Programa Mundial de Alimentos"),
    ),
    AgencyEntry(
        "Office of the UN High Commissioner for Human Rights",
        "OHCHR",
        kind=PARTNER,
        aliases=(
            "Office of the United Nations High Commissioner for Human Rights",
            "UN Human Rights Office",
            "UN High Commissioner for Human Rights",
            "Oficina del Alto Comisionado de las Naciones Unidas para los Derechos Humanos",
        ),
    ),
)

# Short names too common as words to look for in running text ("state", "labor", a country
# named as a place): they name an agency only when given alone, as in a heading "To State",
# a lead-in "calls on Mexico to:" or `--addressee Mexico`. Values are directory keys.
SHORT_NAMES = {
    "State": "DOS",
    "Justice": "DOJ",
    "Labor": "DOL",
    "Commerce": "DOC",
    "Interior": "DOI",
    "Education": "ED",
    "Energy": "DOE",
    "Defense": "DOD",
    "Agriculture": "USDA",
    "Transportation": "DOT",
    "the House": "U.S. House of Representatives",
    "Senate": "U.S. Senate",
    "Administration": WHITE_HOUSE,
    "President": WHITE_HOUSE,
    "Mexico": "Government of Mexico",
    "México": "Government of Mexico",
    "Guatemala": "Government of Guatemala",
    "Costa Rica": "Government of Costa Rica",
    "Honduras": "Government of Honduras",
    "El Salvador": "Government of El Salvador",
    "Colombia": "Government of Colombia",
    "Panama": "Government of Panama",
    "Panamá": "Government of Panama",
    "Canada": "Government of Canada",
    "Canadá": "Government of Canada",
}


def ensure_agency_directory():
    """Create the directory's agencies that are missing; return how many were created.

    Agencies are matched by acronym or name, so staff edits (a new name, acronym, parent or
    aliases) are kept; an agency staff renamed *and* re-abbreviated is created again.
    """
    created = 0
    by_key = {}
    with transaction.atomic():
        for entry in AGENCY_DIRECTORY:
            # By acronym or name, so an agency staff renamed or re-abbreviated is still found.
            match = (
                Q(name=entry.name) | Q(acronym=entry.acronym)
                if entry.acronym
                else Q(name=entry.name)
            )
            agency = Agency.objects.filter(match).first()
            if agency is None:
                agency = Agency.objects.create(
                    name=entry.name,
                    acronym=entry.acronym,
                    kind=entry.kind,
                    parent=by_key.get(entry.parent),
                    aliases="\n".join(entry.aliases),
                )
                created += 1
            by_key[entry.acronym or entry.name] = agency
    return created
