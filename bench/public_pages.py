"""Benchmark the public pages over a large document, in-process.

Fills a scratch database (`<name>_publicbench` next to DATABASE_URL's PostgreSQL one, else a
SQLite file in /tmp) with one document of 2,000 published recommendations (and 200 drafts)
in 20 sections, 30 agencies, 10,000 status changes since 2015 and 4,000 evidence items, then
renders each public page through Django's test client: median and 95th percentile time, the
number of queries (the same whatever the size) and the page's size.

All of it runs twice, each time in a fresh process: with a quarter of the recommendations
(drafts, changes and evidence scaled alike) and with all of them (`--recommendations`). Each
prints the peak memory (RSS) over the rendering, set-up left out; it should stay flat in the
number of recommendations on the document page.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/tracker \
    .venv/bin/python bench/public_pages.py [--recommendations 2000] [--repeat 20]
The last line printed is one JSON object.
"""

import argparse
import datetime
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import at_two_sizes, peak_rss_mb, start_peak  # noqa: E402
from bench.scratch import (  # noqa: E402
    fill_history,
    postgres_url_or_none,
    recreate_postgres_database,
)

RECOMMENDATIONS = 2_000
# For each published recommendation: drafts, status changes and evidence items.
DRAFTS_EACH = 0.1
STATUS_CHANGES_EACH = 5
EVIDENCE_EACH = 2
SECTIONS = 20


def scratch_database():
    url = postgres_url_or_none()
    if url is not None:
        return recreate_postgres_database(url, "publicbench")
    path = Path("/tmp/tracker-publicbench.sqlite3")
    path.unlink(missing_ok=True)
    return f"sqlite:///{path}"


def fill(published):
    from django.core.management import call_command
    from django.db import connection

    from tracker.models import (
        Agency,
        Document,
        Publisher,
        Recommendation,
    )

    call_command("migrate", verbosity=0)
    random.seed(7)
    total = published + round(published * DRAFTS_EACH)
    publisher = Publisher.objects.create(name="Benchmark publisher", acronym="BP")
    agencies = Agency.objects.bulk_create(
        Agency(name=f"Agency {i}", acronym=f"AG{i}", slug=f"ag{i}") for i in range(30)
    )
    document = Document.objects.create(
        code="BP", title="A large report", publisher=publisher,
        published_on=datetime.date(2015, 1, 1),
    )  # fmt: skip
    recommendations = Recommendation.objects.bulk_create(
        Recommendation(
            document=document,
            code=f"BP-{n}",
            section_title=f"Section {n * SECTIONS // total}",
            title=f"Recommendation {n} on protection pathways",
            text=f"The administration should act on matter {n}.",
            position=n,
            is_published=n % 11 != 10,
        )
        for n in range(total)
    )
    fill_history(
        recommendations,
        agencies,
        changes=published * STATUS_CHANGES_EACH,
        evidence=published * EVIDENCE_EACH,
        evidence_title="News {} on pathways",
    )
    for recommendation in Recommendation.objects.all():
        status, since = recommendation.current_status()
        Recommendation.objects.filter(pk=recommendation.pk).update(
            status=status, status_changed_on=since
        )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    busiest = (
        Recommendation.objects.filter(is_published=True)
        .order_by("-status_changed_on", "pk")
        .first()
    )
    return busiest


def measure(client, url, *, repeat):
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()  # each request resets the log, so a capture must start from empty
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    query_count = len(queries)  # read now: the next request clears the log it slices
    assert response.status_code == 200, (url, response.status_code)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "url": url,
        "median_ms": round(statistics.median(timings), 1),
        "p95_ms": round(timings[math.ceil(len(timings) * 0.95) - 1], 1),
        "queries": query_count,
        "kilobytes": round(len(response.content) / 1024, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recommendations", type=int, default=RECOMMENDATIONS)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--child", action="store_true", help=argparse.SUPPRESS
    )  # one measured run, in a fresh process so its peak memory is its own
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.recommendations, args.repeat)))
    else:
        figures = at_two_sizes(
            __file__, "--recommendations", args.recommendations, ["--repeat", args.repeat]
        )
        print(json.dumps(figures))


def run(recommendations, repeat):
    os.environ["DATABASE_URL"] = scratch_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-" + "x" * 30)
    # As in production (DEBUG off): static files collected under hashed names.
    os.environ["STATIC_ROOT"] = tempfile.mkdtemp(prefix="tracker-static-")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("collectstatic", interactive=False, verbosity=0)

    started = time.perf_counter()
    busiest = fill(recommendations)
    print(f"filled in {time.perf_counter() - started:.1f} s", flush=True)
    client = Client(HTTP_HOST="127.0.0.1")
    urls = [
        "/",
        "/documents/BP/",
        busiest.get_absolute_url(),
        "/agencies/",
        "/agencies/ag1/",
        "/search/?q=pathways+1",
    ]
    start_peak()  # the rendering's peak, not the set-up's
    results = [measure(client, url, repeat=repeat) for url in urls]
    peak_mb = peak_rss_mb()
    for result in results:
        print(
            f"{result['url']:<45} median {result['median_ms']:>7} ms  p95 {result['p95_ms']:>7}"
            f" ms  {result['queries']:>2} queries  {result['kilobytes']:>7} KiB"
        )
    print(f"peak RSS over the pages, {recommendations} recommendations: {peak_mb} MB")
    return {
        "recommendations": recommendations,
        "vendor": django.db.connection.vendor,
        "peak_rss_mb": peak_mb,
        "pages": results,
    }


if __name__ == "__main__":
    main()
