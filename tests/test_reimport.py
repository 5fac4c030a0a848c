"""Re-importing a new version of a document: each ask keeps its identity (status history,
evidence, owners) by its text, whatever its new code or place, and asks the new version drops
are withdrawn: kept with their history, never public."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.factories import EvidenceFactory
from tests.support.seeds import WRC_BRIEF, read_seed
from tracker.importing import (
    ParsedRecommendation,
    import_document,
    match_recommendations,
    word_diff,
)
from tracker.models import Agency, Ownership, Recommendation
from tracker.progress import progress_by_document, progress_of_recommendation

pytestmark = pytest.mark.django_db

CODE = "PC-2025"

HEAD = """# Protecting Children at the Border

## Recommendations

### 1. Expand legal pathways for families

The administration should:

"""
PAROLE = "- **USCIS should expand parole for families waiting in Central America.**\n"
MINORS = "- **Reopen the Central American Minors program to all eligible parents.**\n"
INTERPRETERS = "- **Fund interpreters for every child appearing before the immigration courts.**\n"
SECTION_2 = """
### 2. Protect children in federal custody

Congress should:

"""
COUNSEL = "- **Appropriate money for legal representation of unaccompanied children.**\n"
SERVICES = (
    "- **Fund post-release services for every child released from federal custody, and expand"
    " home studies to children placed with sponsors.**\n"
)

VERSION_1 = HEAD + PAROLE + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES

PAROLE_TEXT = "USCIS should expand parole for families waiting in Central America."
MINORS_TEXT = "Reopen the Central American Minors program to all eligible parents."
INTERPRETERS_TEXT = "Fund interpreters for every child appearing before the immigration courts."
COUNSEL_TEXT = "Appropriate money for legal representation of unaccompanied children."


def import_version(text, **options):
    return import_document(
        text,
        code=CODE,
        publisher="Children's Protection Coalition",
        filename="brief.md",
        **options,
    )


def by_text(text):
    return Recommendation.objects.get(document__code=CODE, text=text)


def code_of(text):
    return by_text(text).code.removeprefix(f"{CODE}-")


def history(recommendation):
    return [change.rationale for change in recommendation.status_changes.order_by("pk")]


def evidence_titles(recommendation):
    return sorted(evidence.title for evidence in recommendation.evidence.all())


@pytest.fixture
def tracked():
    """Version 1 imported, with a status history and evidence on the parole and the counsel
    asks, and staff's own owner on the minors ask."""
    import_version(VERSION_1)
    parole, counsel = by_text(PAROLE_TEXT), by_text(COUNSEL_TEXT)
    parole.record_status(
        Recommendation.Status.IN_PROGRESS,
        effective_on=datetime.date(2025, 3, 1),
        evidence=[EvidenceFactory(title="USCIS announces parole expansion")],
    )
    counsel.record_status(
        Recommendation.Status.STALLED,
        effective_on=datetime.date(2025, 4, 1),
        rationale="Appropriations bill stalled in committee.",
    )
    minors = by_text(MINORS_TEXT)
    minors.ownerships.all().delete()
    Ownership.objects.create(
        recommendation=minors, agency=Agency.objects.get(acronym="DOS"), role="lead"
    )
    return {"parole": parole.pk, "counsel": counsel.pk, "minors": minors.pk}


def assert_history_on_its_text(tracked):
    """The parole and counsel asks carry their history and evidence, and nothing else does."""
    parole = Recommendation.objects.get(pk=tracked["parole"])
    assert "expand parole for families" in parole.text
    assert parole.status == Recommendation.Status.IN_PROGRESS
    assert evidence_titles(parole) == ["USCIS announces parole expansion"]
    counsel = Recommendation.objects.get(pk=tracked["counsel"])
    assert "legal representation" in counsel.text
    assert history(counsel) == ["Appropriations bill stalled in committee."]
    others = Recommendation.objects.exclude(pk__in=[tracked["parole"], tracked["counsel"]])
    assert not others.filter(status_changes__isnull=False).exists()
    assert not others.filter(evidence__isnull=False).exists()


def public_texts(client=None):
    client = client or Client()
    response = client.get(reverse("public:document", args=[CODE]))
    assert response.status_code == 200
    return response.content.decode()


def api_texts(client=None):
    client = client or Client()
    response = client.get(reverse("api:recommendation-list"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return [item["text"] for item in response.json()["results"]]


def test_a_bullet_inserted_above_leaves_history_on_the_same_text(tracked):
    inserted = "- **Restore the refugee admissions ceiling to 125,000 people a year.**\n"
    result = import_version(
        HEAD + inserted + PAROLE + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES
    )

    assert [r.text for r in result.created] == [
        "Restore the refugee admissions ceiling to 125,000 people a year."
    ]
    assert code_of("Restore the refugee admissions ceiling to 125,000 people a year.") == "1.1"
    assert code_of(PAROLE_TEXT) == "1.2"
    assert by_text(PAROLE_TEXT).pk == tracked["parole"]
    assert [(m.old_code, m.recommendation.code) for m in result.moved] == [
        (f"{CODE}-1.1", f"{CODE}-1.2"),
        (f"{CODE}-1.2", f"{CODE}-1.3"),
        (f"{CODE}-1.3", f"{CODE}-1.4"),
    ]
    assert result.reworded == []
    assert_history_on_its_text(tracked)
    # Staff's owner stays with the minors ask, now 1.3.
    assert by_text(MINORS_TEXT).ownerships.get().agency.acronym == "DOS"


def test_links_to_a_renumbered_ask_lead_to_it_and_a_reused_code_shows_its_new_ask(tracked):
    inserted = "- **Restore the refugee admissions ceiling to 125,000 people a year.**\n"
    # 1.1 (parole) moves to 1.2, ..., 1.3 (interpreters) to 1.4; 2.2 (services) is deleted.
    import_version(HEAD + inserted + PAROLE + MINORS + INTERPRETERS + SECTION_2 + COUNSEL)
    client = Client()

    def link(code, view="public:recommendation"):
        return client.get(reverse(view, args=[CODE, f"{CODE}-{code}"]))

    reused = link("1.1")  # the code now belongs to the inserted ask: no redirect
    assert reused.status_code == 200 and "refugee admissions ceiling" in reused.content.decode()
    assert link("1.4").status_code == 200
    # 1.3 is taken again (by minors); a code no ask has any more redirects to where it went.
    by_text(INTERPRETERS_TEXT).former_codes.create(code=f"{CODE}-9")
    moved = link("9")
    assert moved.status_code == 302
    assert moved["Location"] == reverse("public:recommendation", args=[CODE, f"{CODE}-1.4"])
    badge = link("9", view="public:badge_recommendation")
    assert badge.status_code == 302
    assert badge["Location"].endswith(f"{CODE}-1.4.svg")
    assert link("2.2").status_code == 404  # withdrawn: gone from the public
    assert link("7").status_code == 404


def test_a_renumbering_keeps_the_codes_an_ask_had(tracked):
    import_version(HEAD + MINORS + PAROLE + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES)
    parole = by_text(PAROLE_TEXT)
    assert parole.code == f"{CODE}-1.2"
    assert list(parole.former_codes.values_list("code", flat=True)) == [f"{CODE}-1.1"]
    by_text(MINORS_TEXT).former_codes.all().delete()
    import_version(HEAD + MINORS + "- **Fund more asylum officers at every port of entry.**\n"
                   + PAROLE + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES)  # fmt: skip
    parole.refresh_from_db()
    assert parole.code == f"{CODE}-1.3"
    assert list(parole.former_codes.values_list("code", flat=True)) == [
        f"{CODE}-1.2",
        f"{CODE}-1.1",
    ]


def test_a_deleted_bullet_is_withdrawn_kept_with_its_history_and_hidden(tracked, viewer):
    feed = reverse("public:feed_updates")
    assert "USCIS should expand parole" in Client().get(feed).content.decode()
    result = import_version(HEAD + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES)

    parole = Recommendation.objects.get(pk=tracked["parole"])
    assert result.withdrawn == [parole]
    assert parole.withdrawn_at is not None
    assert_history_on_its_text(tracked)
    # Its code went to the ask that moved up; the withdrawn one keeps a code of its own.
    assert code_of(MINORS_TEXT) == "1.1"
    assert parole.code != f"{CODE}-1.1"
    # Not published as a duplicate anywhere the public looks, nor to staff outside the admin.
    assert PAROLE_TEXT[:-1] not in public_texts()
    assert PAROLE_TEXT not in api_texts()
    detail = reverse("api:recommendation-detail", args=[parole.pk])
    assert Client().get(detail, HTTP_ACCEPT="application/json").status_code == 404
    staff = Client()
    staff.force_login(viewer)
    assert PAROLE_TEXT not in api_texts(staff)
    assert "USCIS should expand parole" not in Client().get(feed).content.decode()
    assert MINORS_TEXT[:-1] in public_texts() and MINORS_TEXT in api_texts()
    assert parole not in Recommendation.objects.public()


def test_a_withdrawn_ask_no_longer_counts_in_progress_even_for_staff(tracked):
    section = by_text("Expand legal pathways for families")
    assert progress_of_recommendation(section) == pytest.approx(0.25 / 3)
    import_version(HEAD + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES)

    assert progress_of_recommendation(section) == 0.0
    document = section.document
    assert progress_by_document([document.pk])[document.pk].total == 6
    parole = Recommendation.objects.get(pk=tracked["parole"])
    assert progress_of_recommendation(parole) == 0.25


def test_the_admin_lists_withdrawn_recommendations(tracked, admin_user):
    import_version(HEAD + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES)
    client = Client()
    client.force_login(admin_user)
    changelist = reverse("admin:tracker_recommendation_changelist")
    page = client.get(changelist, {"withdrawn_at__isnull": "False"}).content.decode()
    assert "USCIS should expand parole" in page
    assert "Reopen the Central American Minors" not in page


def test_a_withdrawn_ask_that_comes_back_is_restored_with_its_history(tracked):
    import_version(HEAD + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES)
    result = import_version(VERSION_1)

    parole = Recommendation.objects.get(pk=tracked["parole"])
    assert result.restored == [parole]
    assert result.created == []
    assert parole.withdrawn_at is None
    assert parole.code == f"{CODE}-1.1"
    assert PAROLE_TEXT[:-1] in public_texts()
    assert_history_on_its_text(tracked)


def test_asks_moved_between_sections_keep_their_identity(tracked):
    moved = HEAD + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + PAROLE + SERVICES
    result = import_version(moved)

    parole = Recommendation.objects.get(pk=tracked["parole"])
    assert parole.code == f"{CODE}-2.2"
    assert parole.parent.text == "Protect children in federal custody"
    assert f"{CODE}-1.1" in [m.old_code for m in result.moved]
    assert (result.created, result.withdrawn) == ([], [])
    assert_history_on_its_text(tracked)


def test_a_section_retitled_beyond_recognition_keeps_its_asks_under_the_new_heading(
    tracked, tmp_path
):
    old_heading = by_text("Protect children in federal custody")
    retitled = SECTION_2.replace(
        "Protect children in federal custody", "End the detention of families"
    )
    path = tmp_path / "brief.md"
    path.write_text(
        HEAD + PAROLE + MINORS + INTERPRETERS + retitled + COUNSEL + SERVICES, encoding="utf-8"
    )
    out = io.StringIO()
    call_command("import_document", str(path), "--code", CODE, stdout=out)

    counsel = Recommendation.objects.get(pk=tracked["counsel"])
    assert counsel.code == f"{CODE}-2.1"
    assert counsel.parent.text == "End the detention of families"
    old_heading.refresh_from_db()
    assert old_heading.withdrawn_at is not None
    assert f"moved {CODE}-2.1 under {CODE}-2" in out.getvalue()
    assert_history_on_its_text(tracked)


def test_a_reworded_ask_keeps_its_history_and_the_report_shows_the_words_changed(tracked):
    reworded = COUNSEL.replace(
        "Appropriate money for legal representation of unaccompanied",
        "Appropriate more money for legal representation of all unaccompanied",
    )
    result = import_version(HEAD + PAROLE + MINORS + INTERPRETERS + SECTION_2 + reworded + SERVICES)

    counsel = Recommendation.objects.get(pk=tracked["counsel"])
    assert counsel.text == (
        "Appropriate more money for legal representation of all unaccompanied children."
    )
    assert [(r.recommendation, r.diff) for r in result.reworded] == [
        (
            counsel,
            "Appropriate {+more+} money for legal representation of {+all+} "
            "unaccompanied children.",
        )
    ]
    assert [r.code for r in result.updated] == [f"{CODE}-2.1"]
    assert (result.created, result.withdrawn, result.moved) == ([], [], [])
    assert_history_on_its_text(tracked)


def test_an_ask_split_in_two_keeps_its_identity_on_the_closer_half(tracked):
    services = by_text(SERVICES[4:-3])
    services.record_status(
        Recommendation.Status.PARTIAL,
        effective_on=datetime.date(2025, 5, 1),
        rationale="Post-release services funded for half the children.",
    )
    split = (
        "- **Fund post-release services for every child released from federal custody"
        " without delay.**\n- **Expand home studies to every child placed with a sponsor.**\n"
    )
    result = import_version(HEAD + PAROLE + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + split)

    services.refresh_from_db()
    assert services.text == (
        "Fund post-release services for every child released from federal custody without delay."
    )
    assert history(services) == ["Post-release services funded for half the children."]
    assert [r.text for r in result.created] == [
        "Expand home studies to every child placed with a sponsor."
    ]
    assert not by_text(
        "Expand home studies to every child placed with a sponsor."
    ).status_changes.exists()
    assert [r.recommendation for r in result.reworded] == [services]
    assert result.withdrawn == []


def test_an_ask_replaced_by_a_different_one_is_withdrawn_not_reused(tracked):
    other = "- **Close family detention centres and end the detention of children.**\n"
    result = import_version(HEAD + PAROLE + MINORS + INTERPRETERS + SECTION_2 + other + SERVICES)

    assert [r.pk for r in result.withdrawn] == [tracked["counsel"]]
    assert code_of("Close family detention centres and end the detention of children.") == "2.1"
    assert_history_on_its_text(tracked)


def test_two_asks_that_swap_places_swap_codes_and_keep_their_histories(tracked):
    result = import_version(HEAD + MINORS + PAROLE + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES)

    assert code_of(MINORS_TEXT) == "1.1"
    assert code_of(PAROLE_TEXT) == "1.2"
    assert len(result.moved) == 2
    assert_history_on_its_text(tracked)


def test_the_same_version_again_changes_nothing(tracked):
    before = list(Recommendation.objects.values_list("pk", "code", "updated_at", "withdrawn_at"))
    result = import_version(VERSION_1)

    assert len(result.unchanged) == 7
    assert (result.created, result.updated, result.withdrawn) == ([], [], [])
    assert (result.moved, result.reworded, result.restored) == ([], [], [])
    after = list(Recommendation.objects.values_list("pk", "code", "updated_at", "withdrawn_at"))
    assert after == before
    assert_history_on_its_text(tracked)


def test_a_dry_run_reports_the_same_and_writes_nothing(tracked):
    version_2 = HEAD + MINORS + INTERPRETERS + SECTION_2 + COUNSEL + SERVICES
    before = list(Recommendation.objects.values_list("pk", "code", "withdrawn_at"))
    result = import_version(version_2, dry_run=True)

    assert [r.pk for r in result.withdrawn] == [tracked["parole"]]
    assert [m.old_code for m in result.moved] == [f"{CODE}-1.2", f"{CODE}-1.3"]
    assert list(Recommendation.objects.values_list("pk", "code", "withdrawn_at")) == before
    assert PAROLE_TEXT[:-1] in public_texts()


def test_the_command_reports_moved_reworded_and_withdrawn_asks(tracked, tmp_path):
    path = tmp_path / "brief.md"
    path.write_text(
        HEAD
        + MINORS
        + INTERPRETERS.replace("Fund interpreters", "Fund trained interpreters")
        + SECTION_2
        + COUNSEL
        + SERVICES,
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command("import_document", str(path), "--code", CODE, stdout=out)
    output = out.getvalue()

    assert f"moved {CODE}-1.2 -> {CODE}-1.1" in output
    assert f"reworded {CODE}-1.2: Fund {{+trained+}} interpreters for every child" in output
    assert "Withdrawn (no longer in the document" in output
    assert "USCIS should expand parole" in output
    assert "0 created, 5 updated, 1 unchanged, 1 withdrawn." in output


def test_short_asks_need_more_than_most_of_their_words_to_keep_an_identity():
    asks = [ParsedRecommendation(code="X-1", text=text) for text in ("Work with Canada.",)]
    stored = [Recommendation(pk=1, code="X-1", text="Work with Mexico.")]
    assert match_recommendations(asks, stored) == {}
    edited = [ParsedRecommendation(code="X-1", text="Work closely with Mexico.")]
    assert match_recommendations(edited, stored) == {"X-1": stored[0]}


def test_word_diff_marks_removed_and_added_words():
    assert word_diff("Fund ORR now.", "Fund HHS now, fully.") == (
        "Fund [-ORR now.-] {+HHS now, fully.+}"
    )
    assert word_diff("Same words.", "Same words.") == "Same words."


# --- The case reported in issue 13, on the WRC brief ---------------------------------------

USCIS_BULLET = (
    "- » **USCIS should update its final dates for irregular crossings or interdictions.**"
)


@pytest.mark.seeds
def test_wrc_brief_with_a_bullet_inserted_above_uscis_keeps_its_history_on_the_uscis_ask():
    brief = read_seed(WRC_BRIEF)
    options = {"code": "WRC-2024", "publisher": "Women's Refugee Commission", "filename": "wrc.md"}
    import_document(brief, **options)
    uscis = Recommendation.objects.get(code="WRC-2024-1.4")
    assert uscis.text.startswith("USCIS should update its final dates")
    uscis.record_status(
        Recommendation.Status.IN_PROGRESS,
        effective_on=datetime.date(2024, 9, 1),
        evidence=[EvidenceFactory(title="USCIS moves the CHNV cut-off date")],
    )
    inserted = "- » **The administration should publish monthly CHNV processing data.**\n"
    assert brief.count(USCIS_BULLET) == 1
    result = import_document(brief.replace(USCIS_BULLET, inserted + USCIS_BULLET), **options)

    uscis.refresh_from_db()
    assert uscis.code == "WRC-2024-1.5"
    assert uscis.status == Recommendation.Status.IN_PROGRESS
    assert evidence_titles(uscis) == ["USCIS moves the CHNV cut-off date"]
    new = Recommendation.objects.get(code="WRC-2024-1.4")
    assert new.text == "The administration should publish monthly CHNV processing data."
    assert not new.status_changes.exists() and not new.evidence.exists()
    assert [r.code for r in result.created] == ["WRC-2024-1.4"]
    assert (result.withdrawn, result.reworded) == ([], [])
    assert Recommendation.objects.public().count() == 21
