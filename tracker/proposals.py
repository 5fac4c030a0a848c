"""Import proposals: an import staff review and edit before anything is saved.

`propose_import` runs the importer as a dry run and keeps what it would save as an
ImportProposal: each recommendation with its parent, text, note, owners, the stored one it
continues and what the importer was unsure of. Staff edit the items (text, owners, parent),
drop or merge them, then `confirm_proposal` saves the result in one transaction, through the
same code path as a direct import (importing.save_import), with the matches staff saw.
"""

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .directory import ensure_agency_directory
from .importing import (
    DocumentImportError,
    ImportResult,
    ParsedDocument,
    ParsedRecommendation,
    addressed_to_for,
    agency_label,
    import_document,
    save_import,
)
from .models import Agency, ImportProposal, Publisher, Recommendation

# What importing (and so reviewing an import) takes: the admin's upload and review pages and
# the start page's list of imports awaiting review ask for all of them.
IMPORT_PERMISSIONS = [
    "tracker.add_document",
    "tracker.change_document",
    "tracker.add_recommendation",
    "tracker.change_recommendation",
]


class ProposalError(DocumentImportError):
    """The edited proposal cannot be saved as it stands; `problems` say why, one per item."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


def propose_import(
    source: str | bytes,
    *,
    code: str,
    fmt: str | None = None,
    filename: str = "",
    content_type: str = "",
    source_name: str = "",
    created_by=None,
    publisher: Publisher | str | None = None,
    publisher_acronym: str = "",
    publish_new: bool = True,
    **metadata,
) -> ImportProposal:
    """Read a document as import_document would, save nothing of it, and keep what it would
    save as a proposal for review. Input that cannot be imported raises DocumentImportError
    and keeps no proposal."""
    result = import_document(
        source,
        code=code,
        fmt=fmt,
        filename=filename,
        content_type=content_type,
        publisher=publisher,
        publisher_acronym=publisher_acronym,
        publish_new=publish_new,
        dry_run=True,
        **metadata,
    )
    # The dry run's directory was rolled back: staff choose owners among its agencies.
    ensure_agency_directory()
    return ImportProposal.objects.create(
        code=code,
        source_name=source_name or filename,
        format=result.format,
        document_is_new=result.document_created,
        options=proposal_options(result, publisher=publisher, publisher_acronym=publisher_acronym)
        | {"publish_new": publish_new},
        items=proposal_items(result.proposal),
        withdrawn=withdrawn_items(result),
        stored_fingerprint=result.stored_fingerprint,
        summary=result.summary(),
        created_by=created_by,
    )


def proposal_options(result, *, publisher, publisher_acronym):
    """The document as the dry run left it, so confirming saves the same document. Agencies go
    by label and publishers by name: the dry run's new rows do not outlive it."""
    document = result.document
    if isinstance(publisher, Publisher):
        publisher_options = {"publisher_id": publisher.pk}
    elif publisher:
        publisher_options = {"publisher": publisher, "publisher_acronym": publisher_acronym}
    else:
        publisher_options = {}
    return publisher_options | {
        "title": document.title,
        "author": document.author,
        "kind": document.kind,
        "published_on": document.published_on.isoformat() if document.published_on else None,
        "url": document.url,
        "addressee": agency_label(document.addressee) if document.addressee_id else "",
    }


def proposal_items(described):
    """The importer's items (importing.proposal_item), each with a key that outlives edits
    to its code, its parent's key, and what staff decide: keep it, or merge it into another."""
    keys = {item["code"]: str(number) for number, item in enumerate(described, start=1)}
    return [
        item
        | {
            "key": keys[item["code"]],
            "parent_key": keys.get(item["parent"], ""),
            "keep": True,
            "merge_into": "",
        }
        for item in described
    ]


def withdrawn_items(result):
    """The stored recommendations the new version no longer has, with their codes as stored
    (the dry run may have renamed them to free their codes)."""
    pks = [recommendation.pk for recommendation in result.withdrawn]
    stored = Recommendation.objects.filter(pk__in=pks).order_by("position", "pk")
    return [
        {"pk": recommendation.pk, "code": recommendation.code, "title": recommendation.title}
        for recommendation in stored
    ]


@dataclass(frozen=True)
class Resolved:
    """The items to save, in tree order, after drops and merges; and the stored
    recommendations that no item continues any more (dropped or merged away)."""

    items: list[dict]
    released: list[dict]


def resolve_items(items):
    """Apply staff decisions to proposal items; raise ProposalError listing every problem.

    - A dropped item is not saved; its children move up to its parent.
    - An item merged into another adds its text to the end of that one's, its note to the
      note, its owners to the supporting agencies, and its children; the stored
      recommendation it continued goes to the target when the target continues none.
    - Codes must be unique and parents must not loop; the result is in tree order (each
      parent before its children, siblings in document order), as save_import needs.
    """
    by_key = {item["key"]: dict(item) for item in items}
    problems = []
    kept = [item for item in by_key.values() if item["keep"]]
    absorbed = {}  # merged key -> target key
    released = []

    def merge_target(item):
        seen = {item["key"]}
        target = by_key.get(item["merge_into"])
        while target is not None and target["keep"] and target["merge_into"]:
            if target["key"] in seen:
                return None
            seen.add(target["key"])
            target = by_key.get(target["merge_into"])
        return target if target is not None and target["keep"] else None

    for item in kept:
        if not item["merge_into"]:
            continue
        target = merge_target(item)
        if target is None:
            problems.append(f"{item['code']}: merge it into an item that is kept and not merged")
            continue
        absorbed[item["key"]] = target["key"]
        target["text"] = f"{target['text']} {item['text']}".strip()
        target["note"] = "\n\n".join(part for part in (target["note"], item["note"]) if part)
        owners = [item["lead"], *item["supporting"]] if item["lead"] else item["supporting"]
        target["supporting"] = list(
            dict.fromkeys(
                name for name in [*target["supporting"], *owners] if name != target["lead"]
            )
        )
        if item["stored"] and not target["stored"]:
            target["stored"] = item["stored"]
        elif item["stored"]:
            released.append(item["stored"])
    released += [item["stored"] for item in by_key.values() if not item["keep"] and item["stored"]]
    saved = [item for item in kept if item["key"] not in absorbed]
    saved_keys = {item["key"] for item in saved}

    def live_parent(key):
        seen = set()
        while key and key not in saved_keys:
            if key in seen or key not in by_key:
                return ""
            seen.add(key)
            key = absorbed.get(key) or by_key[key]["parent_key"]
        return key

    for item in saved:
        item["parent_key"] = live_parent(item["parent_key"])
        if not item["code"].strip() or not item["text"].strip():
            problems.append(f"{item['code'] or item['key']}: give it a code and a text")
    codes = [item["code"] for item in saved]
    problems += [
        f"{code}: two items have this code" for code in sorted(set(codes)) if codes.count(code) > 1
    ]
    order, problems = tree_order(saved, problems)
    if problems:
        raise ProposalError(problems)
    return Resolved(order, released)


def tree_order(items, problems):
    """Return the items parents first, each followed by its children in document order, and
    the problems with a problem added for each item that sits under itself."""
    children = {}
    for item in items:
        children.setdefault(item["parent_key"], []).append(item)
    order = []

    def visit(item):
        order.append(item)
        for child in children.get(item["key"], ()):
            visit(child)

    for root in children.get("", ()):
        visit(root)
    placed = {item["key"] for item in order}
    problems = problems + [
        f"{item['code']}: it cannot sit under one of its own sub-recommendations"
        for item in items
        if item["key"] not in placed
    ]
    return order, problems


def parsed_document(proposal, items):
    """The resolved items as the parsed document save_import takes, owners as staff set."""
    codes = {item["key"]: item["code"] for item in items}
    return ParsedDocument(
        format=proposal.format,
        reviewed=True,
        title=proposal.options.get("title", ""),
        recommendations=[
            ParsedRecommendation(
                code=item["code"],
                text=item["text"],
                parent_code=codes.get(item["parent_key"], ""),
                section_title=item["section"],
                title=item["title"],
                note=item["note"],
                lead_agency=item["lead"] or "",
                supporting_agencies=tuple(item["supporting"]),
                themes=tuple(item["themes"]),
                addressed_to=item["addressed_to"],
                is_priority=item["is_priority"],
            )
            for item in items
        ],
    )


def confirm_proposal(proposal: ImportProposal, *, user=None) -> ImportResult:
    """Save the proposal as staff left it, in one transaction, and mark it imported.

    Refused, writing nothing, when it was already decided, when its items do not resolve
    (resolve_items), or when the document's recommendations changed since it was proposed.
    """
    with transaction.atomic():
        proposal = ImportProposal.objects.select_for_update().get(pk=proposal.pk)
        if proposal.state != ImportProposal.State.PENDING:
            raise DocumentImportError(
                f"This proposal was already {proposal.get_state_display().lower()}."
            )
        resolved = resolve_items(proposal.items)
        options = dict(proposal.options)
        if "publisher_id" in options:
            options["publisher"] = Publisher.objects.filter(pk=options.pop("publisher_id")).first()
        if options.get("published_on"):
            options["published_on"] = datetime.date.fromisoformat(options["published_on"])
        result = save_import(
            parsed_document(proposal, resolved.items),
            code=proposal.code,
            matched={
                item["code"]: item["stored"]["pk"] for item in resolved.items if item["stored"]
            },
            expected_fingerprint=proposal.stored_fingerprint,
            **options,
        )
        proposal.state = ImportProposal.State.CONFIRMED
        proposal.document = result.document
        proposal.decided_by = user
        proposal.decided_at = timezone.now()
        proposal.summary = result.summary()
        proposal.save()
    return result


def discard_proposal(proposal: ImportProposal, *, user=None):
    """Mark a pending proposal discarded; nothing of it was saved, so nothing else changes."""
    updated = ImportProposal.objects.filter(
        pk=proposal.pk, state=ImportProposal.State.PENDING
    ).update(state=ImportProposal.State.DISCARDED, decided_by=user, decided_at=timezone.now())
    if not updated:
        raise DocumentImportError("This proposal was already decided.")


def update_items(proposal: ImportProposal, edits):
    """Store staff edits ({key: {field: value}}) to a pending proposal's items. A changed lead
    also changes whom the recommendation is addressed to."""
    agencies = {agency_label(agency): agency for agency in Agency.objects.all()}
    items = []
    for item in proposal.items:
        edit = edits.get(item["key"], {})
        if "lead" in edit and edit["lead"] != item["lead"]:
            item = item | {"addressed_to": addressed_to_for(agencies.get(edit["lead"]))}
        items.append(item | edit)
    proposal.items = items
    proposal.save(update_fields=["items"])
