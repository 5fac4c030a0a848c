"""The demo data: both seed documents, the news reports as evidence, and the history they show.

The files here ship with the project, so a fresh clone can load the demo without the seeds.
"""

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from ..directory import WHITE_HOUSE, ensure_agency_directory
from ..importing import import_document
from ..models import Agency, Document, Evidence, Publisher, Recommendation, Theme

DEMO_DIR = Path(__file__).resolve().parent


@dataclass
class DemoSummary:
    documents: int = 0
    recommendations: int = 0
    evidence: int = 0
    status_changes: int = 0


def read_demo_data():
    return json.loads((DEMO_DIR / "demo.json").read_text(encoding="utf-8"))


def load_demo(*, progress=lambda message: None):
    """Load (or bring up to date) the demo documents, evidence and status history.

    Safe to run again: documents re-import in place, evidence is matched by title and date,
    and a status change already recorded from the same evidence is not recorded twice.
    """
    data = read_demo_data()
    summary = DemoSummary()
    with transaction.atomic():
        ensure_agency_directory()
        administration = Agency.objects.get(acronym=WHITE_HOUSE)
        for entry in data["documents"]:
            publisher, _ = Publisher.objects.update_or_create(
                name=entry["publisher"]["name"],
                defaults={
                    "acronym": entry["publisher"]["acronym"],
                    "url": entry["publisher"]["url"],
                },
            )
            result = import_document(
                (DEMO_DIR / entry["csv"]).read_text(encoding="utf-8"),
                fmt="csv",
                code=entry["code"],
                title=entry["title"],
                publisher=publisher,
                kind=entry["kind"],
                published_on=datetime.date.fromisoformat(entry["published_on"]),
                author=entry["author"],
                url=entry.get("url", ""),
                addressee=administration,
            )
            Document.objects.filter(pk=result.document.pk).update(summary=entry["summary"])
            summary.documents += 1
            summary.recommendations += result.document.recommendations.count()
            progress(f"{entry['code']}: {result.summary()}")

        for item in data["evidence"]:
            evidence = record_demo_evidence(item)
            summary.evidence += 1
            summary.status_changes += record_demo_status_changes(item, evidence)
            progress(f"Evidence: {evidence.title}")
        load_demo_translations()
    return summary


def load_demo_translations(language="es"):
    """Give some demo texts their `language` version (translations-<language>.json), so the
    site in that language shows translated texts beside originals marked as such."""
    data = json.loads((DEMO_DIR / f"translations-{language}.json").read_text(encoding="utf-8"))

    def localized(values):
        return {f"{field}_{language}": text for field, text in values.items()}

    for code, values in data["documents"].items():
        Document.objects.filter(code=code).update(**localized(values))
    for code, values in data["recommendations"].items():
        Recommendation.objects.filter(code=code).update(**localized(values))
    for acronym, name in data["agencies"].items():
        Agency.objects.filter(acronym=acronym).update(**{f"name_{language}": name})
    for name, translated in data["themes"].items():
        Theme.objects.filter(name_en=name).update(**{f"name_{language}": translated})


def _recommendation(code):
    return Recommendation.objects.get(code=code)


def record_demo_evidence(item):
    evidence, _ = Evidence.objects.update_or_create(
        title=item["title"],
        published_on=datetime.date.fromisoformat(item["published_on"]),
        defaults={
            "outlet": item["outlet"],
            "kind": item["kind"],
            "effect": item["effect"],
            "excerpt": item["excerpt"],
            "url": item.get("url", ""),
        },
    )
    evidence.recommendations.add(*[_recommendation(code) for code in item["recommendations"]])
    return evidence


def record_demo_status_changes(item, evidence):
    recorded = 0
    for change in item["status_changes"]:
        recommendation = _recommendation(change["code"])
        effective_on = datetime.date.fromisoformat(change["effective_on"])
        already = recommendation.status_changes.filter(
            status=change["status"], effective_on=effective_on, evidence=evidence
        )
        if already.exists():
            continue
        recommendation.record_status(
            change["status"],
            effective_on=effective_on,
            evidence=[evidence],
            rationale=change["rationale"],
        )
        recorded += 1
    return recorded
