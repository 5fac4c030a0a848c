"""Review before saving: an import becomes a proposal staff edit in the admin (text, owners,
parents; drop, merge, move) and confirm; only then is it saved, in one transaction."""

import datetime
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from tests.factories import EvidenceFactory, PublisherFactory
from tests.support import item_key, review_data, review_url
from tracker import backup
from tracker.importing import DocumentImportError, import_document
from tracker.models import Document, ImportProposal, Recommendation
from tracker.proposals import (
    ProposalError,
    confirm_proposal,
    discard_proposal,
    propose_import,
    resolve_items,
)

pytestmark = pytest.mark.django_db

CODE = "CP-2025"
PUBLISHER = "Children's Protection Coalition"

BRIEF = """# Protecting Children at the Border

## Recommendations

### 1. Expand legal pathways for families

The administration should:

- **USCIS should expand parole for families waiting in Central America.**
- **Reopen the Central American Minors program to all eligible parents.**
- **Fund interpreters for every child appearing before the immigration courts.**

### 2. Protect children in federal custody

Congress should:

- **Appropriate money for legal representation of unaccompanied children.**
- **Fund post-release services for every child released from federal custody.**
"""
PAROLE = "USCIS should expand parole for families waiting in Central America."
MINORS = "Reopen the Central American Minors program to all eligible parents."
INTERPRETERS = "Fund interpreters for every child appearing before the immigration courts."
COUNSEL = "Appropriate money for legal representation of unaccompanied children."
SERVICES = "Fund post-release services for every child released from federal custody."


def propose(text=BRIEF, **options):
    return propose_import(
        text, code=CODE, publisher=PUBLISHER, filename="brief.md", source_name="brief.md", **options
    )


def stored(text):
    return Recommendation.objects.get(document__code=CODE, text=text)


def owners(recommendation):
    ownerships = recommendation.ownerships.select_related("agency")
    lead = [o.agency.acronym for o in ownerships if o.role == "lead"]
    return lead, sorted(o.agency.acronym for o in ownerships if o.role == "supporting")


def code_of(text):
    return stored(text).code.removeprefix(f"{CODE}-")


def row_counts():
    return {m._meta.label_lower: m._default_manager.count() for m in backup.tracked_models()}


# --- Proposing -----------------------------------------------------------------------------


def test_a_proposal_holds_every_item_and_saves_nothing_of_the_document():
    proposal = propose()
    assert not Document.objects.filter(code=CODE).exists()
    assert not Recommendation.objects.exists()
    assert proposal.state == ImportProposal.State.PENDING and proposal.document_is_new
    codes = [item["code"] for item in proposal.items]
    assert codes == [f"{CODE}-{n}" for n in ("1", "1.1", "1.2", "1.3", "2", "2.1", "2.2")]
    parole = next(item for item in proposal.items if item["text"] == PAROLE)
    assert parole["parent"] == f"{CODE}-1" and parole["lead"] == "USCIS"
    assert parole["stored"] is None and parole["outcome"] == "created"


def test_a_refused_document_leaves_no_proposal():
    before = row_counts()
    with pytest.raises(DocumentImportError, match="No recommendations were found"):
        propose("Just a paragraph, with no asks in it at all.")
    assert row_counts() == before


def test_the_proposal_flags_what_the_importer_was_unsure_of():
    text = BRIEF + (
        "- **Appropriate money for the legal representation of all unaccompanied children.**\n"
        "- **Will Congress act before the children age out?**\n"
    )
    proposal = propose(text)
    flags = {item["text"]: item["flags"] for item in proposal.items}
    assert flags[
        "Appropriate money for the legal representation of all unaccompanied children."
    ] == [f"possible duplicate of {CODE}-2.1"]
    assert (
        "low confidence: reads as a question"
        in flags["Will Congress act before the children age out?"]
    )
    assert flags[PAROLE] == []


# --- Confirming ----------------------------------------------------------------------------


def test_confirming_an_untouched_proposal_saves_what_a_direct_import_would():
    confirm_proposal(propose())
    reviewed = {
        r.code: (r.text, r.parent.code if r.parent else None, owners(r))
        for r in Recommendation.objects.select_related("parent")
    }
    Document.objects.all().delete()
    import_document(BRIEF, code=CODE, publisher=PUBLISHER, filename="brief.md")
    direct = {
        r.code: (r.text, r.parent.code if r.parent else None, owners(r))
        for r in Recommendation.objects.select_related("parent")
    }
    assert reviewed == direct and len(direct) == 7


def test_staff_edit_drop_merge_and_move_items_before_confirming(admin_client):
    proposal = propose()
    minors, interpreters = item_key(proposal, f"{CODE}-1.2"), item_key(proposal, f"{CODE}-1.3")
    section_2 = item_key(proposal, f"{CODE}-2")
    edits = {
        f"{CODE}-1.1": {"text": PAROLE.replace("Central America", "the region"), "lead": "DHS"},
        f"{CODE}-1.2": {"supporting": "State; USCIS"},
        f"{CODE}-1.3": {"parent_key": section_2, "code": f"{CODE}-2.3"},
        f"{CODE}-2.1": {"keep": False},
        f"{CODE}-2.2": {"merge_into": minors},
    }
    response = admin_client.post(review_url(proposal), review_data(proposal, edits))
    document = Document.objects.get(code=CODE)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:tracker_document_change", args=[document.pk])
    edited = stored(PAROLE.replace("Central America", "the region"))
    assert owners(edited) == (["DHS"], [])
    merged = stored(f"{MINORS} {SERVICES}")
    assert owners(merged)[1] == ["Congress", "DOS", "USCIS"]
    moved = stored(INTERPRETERS)
    assert moved.code == f"{CODE}-2.3" and moved.parent.code == f"{CODE}-2"
    assert not Recommendation.objects.filter(text__in=[COUNSEL, SERVICES]).exists()
    assert document.recommendations.count() == 5
    proposal.refresh_from_db()
    assert proposal.state == ImportProposal.State.CONFIRMED and proposal.document == document
    assert item_key(proposal, f"{CODE}-2.3") == interpreters


def test_dropping_a_parent_moves_its_children_up():
    proposal = propose()
    proposal.items[0]["keep"] = False  # CP-2025-1, the section heading
    proposal.save()
    confirm_proposal(proposal)
    assert stored(PAROLE).parent is None
    assert not Recommendation.objects.filter(code=f"{CODE}-1").exists()


def test_items_that_cannot_be_saved_are_refused_together_and_nothing_is_written():
    proposal = propose()
    first, child = proposal.items[0], proposal.items[1]
    first["parent_key"] = child["key"]  # under its own sub-recommendation
    proposal.items[4]["code"] = proposal.items[5]["code"]  # two items, one code
    proposal.save()
    with pytest.raises(ProposalError) as refused:
        confirm_proposal(proposal)
    assert refused.value.problems == [
        f"{CODE}-2.1: two items have this code",
        f"{CODE}-1: it cannot sit under one of its own sub-recommendations",
        f"{CODE}-1.1: it cannot sit under one of its own sub-recommendations",
        f"{CODE}-1.2: it cannot sit under one of its own sub-recommendations",
        f"{CODE}-1.3: it cannot sit under one of its own sub-recommendations",
    ]
    assert not Document.objects.filter(code=CODE).exists()
    proposal.refresh_from_db()
    assert proposal.state == ImportProposal.State.PENDING


def test_a_merge_into_a_dropped_item_is_refused():
    items = propose().items
    items[1]["keep"] = False
    items[2]["merge_into"] = items[1]["key"]
    with pytest.raises(ProposalError, match="merge it into an item that is kept"):
        resolve_items(items)


def test_an_unknown_agency_is_shown_on_its_item_and_nothing_is_saved(admin_client):
    proposal = propose()
    edits = {f"{CODE}-1.1": {"lead": "Ministry of Magic"}}
    response = admin_client.post(review_url(proposal), review_data(proposal, edits))
    assert response.status_code == 200
    assert "No agency &#x27;Ministry of Magic&#x27; in the directory" in response.text
    assert not Document.objects.filter(code=CODE).exists()


def test_saving_changes_keeps_the_proposal_pending_with_the_edits(admin_client):
    proposal = propose()
    edits = {f"{CODE}-1.1": {"note": "Check the 2024 figures."}}
    data = review_data(proposal, edits, button="_save")
    response = admin_client.post(review_url(proposal), data)
    assert response.status_code == 302 and response["Location"] == review_url(proposal)
    proposal.refresh_from_db()
    assert proposal.state == ImportProposal.State.PENDING
    assert proposal.items[1]["note"] == "Check the 2024 figures."
    assert not Document.objects.filter(code=CODE).exists()


def test_a_proposal_is_confirmed_or_discarded_once(admin_client):
    proposal = propose()
    confirm_proposal(proposal)
    with pytest.raises(DocumentImportError, match="already imported"):
        confirm_proposal(proposal)
    other = propose()
    discard_proposal(other)
    with pytest.raises(DocumentImportError, match="already discarded"):
        confirm_proposal(other)
    page = admin_client.get(review_url(other))
    assert "Discarded" in page.text and 'name="_confirm"' not in page.text


def test_discarding_saves_nothing(admin_client):
    proposal = propose()
    response = admin_client.post(review_url(proposal), review_data(proposal, button="_discard"))
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == ImportProposal.State.DISCARDED
    assert not Document.objects.filter(code=CODE).exists()


# --- Re-imports under review ---------------------------------------------------------------


@pytest.fixture
def tracked():
    """Version 1 imported, with a status change and evidence on the USCIS ask."""
    import_document(BRIEF, code=CODE, publisher=PUBLISHER, filename="brief.md")
    parole = stored(PAROLE)
    parole.record_status(
        Recommendation.Status.IN_PROGRESS,
        effective_on=datetime.date(2025, 3, 1),
        evidence=[EvidenceFactory(title="USCIS widens parole")],
        rationale="USCIS announced it.",
    )
    return parole


def test_the_review_shows_moves_rewordings_and_withdrawals_before_saving(admin_client, tracked):
    version_2 = (
        BRIEF.replace(
            "- **USCIS should expand parole",
            "- **Restore the refugee ceiling to 125,000 people a year.**\n"
            "- **USCIS should expand parole",
        )
        .replace("every child appearing", "each child appearing")
        .replace(
            "- **Appropriate money for legal representation of unaccompanied children.**\n", ""
        )
    )
    proposal = propose(version_2)
    assert stored(PAROLE).code == f"{CODE}-1.1"  # nothing saved yet
    page = admin_client.get(review_url(proposal)).text
    assert f"was {CODE}-1.1" in page  # the USCIS ask, now 1.2
    assert "<del>every</del>" in page and "<ins>each</ins>" in page
    assert "No longer in the document" in page and f"{CODE}-2.1" in page

    admin_client.post(review_url(proposal), review_data(proposal))
    parole = stored(PAROLE)
    assert parole.pk == tracked.pk and parole.code == f"{CODE}-1.2"
    assert parole.status == Recommendation.Status.IN_PROGRESS
    assert [e.title for e in parole.evidence.all()] == ["USCIS widens parole"]
    new = stored("Restore the refugee ceiling to 125,000 people a year.")
    assert new.code == f"{CODE}-1.1" and not new.status_changes.exists()
    counsel = stored(COUNSEL)
    assert counsel.withdrawn_at is not None
    assert counsel not in Recommendation.objects.public()


def test_dropping_a_stored_ask_withdraws_it_with_its_history(tracked):
    proposal = propose(BRIEF)
    proposal.items[1]["keep"] = False  # the USCIS ask
    proposal.save()
    confirm_proposal(proposal)
    tracked.refresh_from_db()
    assert tracked.withdrawn_at is not None
    assert tracked.status_changes.count() == 1


def test_a_proposal_made_before_another_change_is_refused(tracked):
    proposal = propose(BRIEF.replace("every child appearing", "each child appearing"))
    import_document(
        BRIEF.replace("all eligible parents", "every eligible parent"),
        code=CODE,
        publisher=PUBLISHER,
        filename="brief.md",
    )
    before = row_counts()
    with pytest.raises(DocumentImportError, match="changed after this proposal was made"):
        confirm_proposal(proposal)
    assert row_counts() == before
    assert stored(INTERPRETERS)  # the proposal's rewording was not applied


# --- The upload page and the command -------------------------------------------------------


def test_the_upload_page_leads_to_the_review(admin_client):
    publisher = PublisherFactory(name=PUBLISHER)
    form = {
        "code": CODE,
        "publisher": publisher.pk,
        "file": SimpleUploadedFile("brief.md", BRIEF.encode()),
    }
    response = admin_client.post(reverse("admin:tracker_document_import"), form)
    proposal = ImportProposal.objects.get()
    assert response.status_code == 302 and response["Location"] == review_url(proposal)
    assert not Document.objects.filter(code=CODE).exists()
    page = admin_client.get(review_url(proposal)).text
    assert "Nothing is saved until you confirm" in page
    assert all(item["text"] in page for item in proposal.items)
    admin_client.post(review_url(proposal), review_data(proposal))
    assert Document.objects.get(code=CODE).publisher == publisher


def test_staff_without_import_rights_cannot_review(client, editor):
    proposal = propose()
    client.force_login(editor)
    assert client.get(review_url(proposal)).status_code == 403
    assert client.post(review_url(proposal), review_data(proposal)).status_code == 403
    assert not Document.objects.filter(code=CODE).exists()


def test_the_command_leaves_the_import_for_review(tmp_path):
    path = tmp_path / "brief.md"
    path.write_text(BRIEF)
    output = io.StringIO()
    call_command(
        "import_document", str(path), "--code", CODE, "--publisher", PUBLISHER, "--review",
        stdout=output,
    )  # fmt: skip
    proposal = ImportProposal.objects.get()
    assert f"Left for review in the admin: {review_url(proposal)}" in output.getvalue()
    assert "7 recommendations" in output.getvalue()
    assert not Document.objects.filter(code=CODE).exists()
