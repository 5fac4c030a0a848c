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
        ),
    ),
    AgencyEntry("Congress", CONGRESS, aliases=("US Congress", "U.S. Congress")),
    AgencyEntry(
        "Department of Homeland Security",
        "DHS",
        aliases=("Homeland Security Department", "Homeland Security"),
    ),
    AgencyEntry(
        "U.S. Citizenship and Immigration Services",
        "USCIS",
        parent="DHS",
        aliases=("United States Citizenship and Immigration Services",),
    ),
    AgencyEntry(
        "U.S. Customs and Border Protection",
        "CBP",
        parent="DHS",
        aliases=("Customs and Border Protection",),
    ),
    AgencyEntry(
        "U.S. Immigration and Customs Enforcement",
        "ICE",
        parent="DHS",
        aliases=("Immigration and Customs Enforcement",),
    ),
    AgencyEntry(
        "Department of State", "DOS", aliases=("State Department", "US Department of State")
    ),
    AgencyEntry(
        "Bureau of Population, Refugees, and Migration",
        "PRM",
        parent="DOS",
        aliases=("Bureau of Population, Refugees and Migration",),
    ),
    AgencyEntry(
        "U.S. Agency for International Development",
        "USAID",
        aliases=("Agency for International Development",),
    ),
    AgencyEntry("Department of Justice", "DOJ", aliases=("Justice Department",)),
    AgencyEntry("Department of the Treasury", "Treasury", aliases=("Treasury Department",)),
    AgencyEntry("Department of Health and Human Services", "HHS"),
    AgencyEntry("Department of Labor", "DOL", aliases=("Labor Department",)),
    AgencyEntry(
        "Government of Mexico",
        kind=Agency.Kind.PARTNER,
        aliases=("government of Mexico", "Mexican government", "Mexico's government"),
    ),
    AgencyEntry(
        "Mexican Commission for Refugee Assistance",
        "COMAR",
        parent="Government of Mexico",
        kind=Agency.Kind.PARTNER,
        aliases=("Comisión Mexicana de Ayuda a Refugiados",),
    ),
    AgencyEntry(
        "Government of Guatemala",
        kind=Agency.Kind.PARTNER,
        aliases=("government of Guatemala", "Guatemalan government"),
    ),
    AgencyEntry(
        "Government of Costa Rica",
        kind=Agency.Kind.PARTNER,
        aliases=("government of Costa Rica", "Costa Rican government"),
    ),
    AgencyEntry(
        "Government of Honduras",
        kind=Agency.Kind.PARTNER,
        aliases=("government of Honduras", "Honduran government"),
    ),
    AgencyEntry(
        "UN Refugee Agency",
        "UNHCR",
        kind=Agency.Kind.PARTNER,
        aliases=(
            "United Nations High Commissioner for Refugees",
            "United Nations High Commission for Refugees",
        ),
    ),
    AgencyEntry(
        "International Organization for Migration",
        "IOM",
        kind=Agency.Kind.PARTNER,
        aliases=("International Organization on Migration",),
    ),
)


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
