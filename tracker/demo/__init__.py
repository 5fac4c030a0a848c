"""The demo data: both seed documents, the news reports as evidence, and the history they show.

The files here ship with the project, so a fresh clone can load the demo without the seeds.
In demo mode the demo also watches pages it serves itself (`sources`).
"""

import datetime
import json
from dataclasses import dataclass

from django.db import transaction

from ..directory import WHITE_HOUSE, ensure_agency_directory
from ..importing import import_document
from ..models import (
    MIN_CHECK_INTERVAL,
    Agency,
    Document,
    Evidence,
    Publisher,
    Recommendation,
    Source,
    Theme,
)
from .data import DEMO_DIR, read_demo_data
from .sources import (
    EVIDENCE_PATH,
    NEWSROOM_FEED_PATH,
    NEWSROOM_PATH,
    RELEASES,
    stand_in_slug,
)

__all__ = ["DEMO_DIR", "DemoSummary", "load_demo", "read_demo_data"]

# How often the demo looks at its newsroom and its feed: as often as any source may be
# checked; releases come faster, so each check after the first sees something new.
NEWSROOM_INTERVAL = MIN_CHECK_INTERVAL
# The evidence's stand-in pages never change: a look an hour is plenty.
STAND_IN_INTERVAL = datetime.timedelta(hours=1)


@dataclass
class DemoSummary:
    documents: int = 0
    recommendations: int = 0
    evidence: int = 0
    status_changes: int = 0
    sources: int = 0


def load_demo(*, progress=lambda message: None, sources_at=""):
    """Load (or bring up to date) the demo documents, evidence and status history.

    With `sources_at`, the address the demo site is served at, also watch the pages it serves
    there (tracker.demo.sources): its newsroom, the newsroom's feed, and a stand-in page for
    each piece of evidence, which then links to it.

    Safe to run again: documents re-import in place, evidence is matched by title and date,
    a status change already recorded from the same evidence is not recorded twice, and the
    demo's sources move to the new address in place.
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
            stand_in = stand_in_url(sources_at, item) if sources_at else ""
            evidence = record_demo_evidence(item, url=stand_in)
            summary.evidence += 1
            summary.status_changes += record_demo_status_changes(item, evidence)
            progress(f"Evidence: {evidence.title}")
            if stand_in:
                watch_demo_page(
                    stand_in,
                    title=f"Stand-in: {evidence.title}",
                    check_interval=STAND_IN_INTERVAL,
                    recommendations=evidence.recommendations.all(),
                    evidence=[evidence],
                )
                summary.sources += 1
        if sources_at:
            summary.sources += watch_demo_newsroom(sources_at)
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


def stand_in_url(base_url, item):
    return base_url + EVIDENCE_PATH.format(slug=stand_in_slug(item["title"]))


def watch_demo_newsroom(base_url):
    """Watch the demo's newsroom page and its feed; return how many sources that is."""
    codes = {code for _title, _text, codes in RELEASES for code in codes}
    recommendations = Recommendation.objects.filter(code__in=codes)
    watch_demo_page(
        base_url + NEWSROOM_PATH,
        title="Demo newsroom",
        check_interval=NEWSROOM_INTERVAL,
        recommendations=recommendations,
    )
    watch_demo_page(
        base_url + NEWSROOM_FEED_PATH,
        kind=Source.Kind.FEED,
        title="Demo newsroom releases (feed)",
        check_interval=NEWSROOM_INTERVAL,
        recommendations=recommendations,
    )
    return 2


def watch_demo_page(
    url, *, title, check_interval, recommendations, evidence=(), kind=Source.Kind.PAGE
):
    """Create or update the source at `url`; one at the same path on another address (the
    demo served on another port) moves to `url`, keeping its versions."""
    path = url.split("/demo-sources/", 1)[1]
    source = Source.objects.filter(url__endswith=f"/demo-sources/{path}").order_by("pk").first()
    if source is None:
        source = Source(url=url)
    source.url = url
    source.kind = kind
    source.title = title
    source.check_interval = check_interval
    source.is_active = True
    source.save()
    source.recommendations.set(recommendations)
    source.evidence.set(evidence)
    return source


def _recommendation(code):
    return Recommendation.objects.get(code=code)


def record_demo_evidence(item, *, url=""):
    evidence, _ = Evidence.objects.update_or_create(
        title=item["title"],
        published_on=datetime.date.fromisoformat(item["published_on"]),
        defaults={
            "outlet": item["outlet"],
            "kind": item["kind"],
            "effect": item["effect"],
            "excerpt": item["excerpt"],
            "url": url,
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
