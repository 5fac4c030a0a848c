"""What one status change costs: `record_status` with one evidence item on a published
recommendation that one active webhook follows, committed for real (so the work done on
commit counts too).

Prints the queries, the saves of the recommendation, the audit rows and the writes of the
cache's data version (tracker.caching) that one call makes. Celery publishes to kombu's
in-memory broker, which nobody consumes: the delivery is queued, not posted (without a
broker the task would run eagerly). The content types are read once beforehand, as a
running server has them cached.

The recommendation has a history of `--history` earlier status changes (default 2,000). The
call runs twice, each time in a fresh process: over a quarter of that history and over all
of it; each prints the call's peak memory (RSS, set-up left out) and its queries, which
should both stay flat in the number of changes.

Usage: .venv/bin/python bench/status_change.py [--history 2000]
Uses a scratch database: `<name>_bench_status` next to a PostgreSQL DATABASE_URL, else a
temporary SQLite file; CACHE_URL's cache if set, else memory. The last line printed is one
JSON object of the figures.
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import at_two_sizes, peak_rss_mb, start_peak  # noqa: E402
from bench.scratch import postgres_url_or_none, recreate_postgres_database  # noqa: E402


def setup_django():
    if url := postgres_url_or_none():
        os.environ["DATABASE_URL"] = recreate_postgres_database(url, "bench_status")
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ["LOG_LEVEL"] = "ERROR"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def count_version_writes():
    """Count the cache operations that write the data version, whatever form they take."""
    from django.core.cache import caches

    from tracker.caching import VERSION_KEY

    writes = []
    backend = type(caches["default"])
    for name in ("set", "add", "incr"):
        original = getattr(backend, name)

        def counting(self, key, *args, _original=original, **kwargs):
            if key == VERSION_KEY:
                writes.append(key)
            return _original(self, key, *args, **kwargs)

        setattr(backend, name, counting)
    return writes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=2000, help="earlier status changes")
    parser.add_argument(
        "--child", action="store_true", help=argparse.SUPPRESS
    )  # one measured run, in a fresh process so its peak memory is its own
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.history)))
    else:
        figures = at_two_sizes(__file__, "--history", args.history, keys=("peak_rss_mb", "queries"))
        print(json.dumps(figures))


def run(history):
    setup_django()
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.db.models.signals import post_save
    from django.test.utils import CaptureQueriesContext

    from tracker.models import (
        Document,
        Evidence,
        Publisher,
        Recommendation,
        StatusChange,
        Webhook,
    )

    publisher = Publisher.objects.create(name="Women's Refugee Commission")
    document = Document.objects.create(code="WRC-2024", title="Report", publisher=publisher)
    recommendation = Recommendation.objects.create(
        document=document, code="WRC-2024-1", title="One", text="Do it.", is_published=True
    )
    evidence = Evidence.objects.create(title="Announced", url="https://news.example.org/1")
    Webhook.objects.create(url="https://partner.example.org/hook")
    statuses = [Recommendation.Status.IN_PROGRESS, Recommendation.Status.NOT_STARTED]
    StatusChange.objects.bulk_create(
        StatusChange(
            recommendation=recommendation,
            status=statuses[n % 2],
            effective_on=datetime.date(2015, 1, 1) + datetime.timedelta(days=n % 3000),
            rationale="Earlier history.",
        )
        for n in range(history)
    )

    for model in (Recommendation, StatusChange, Evidence):
        ContentType.objects.get_for_model(model)
    saves = []
    post_save.connect(lambda **kwargs: saves.append(1), sender=Recommendation, weak=False)
    version_writes = count_version_writes()
    audit_before = LogEntry.objects.count()
    start_peak()  # the call's peak, not the set-up's
    with CaptureQueriesContext(connection) as queries:
        recommendation.record_status(
            Recommendation.Status.IN_PROGRESS,
            effective_on=datetime.date(2024, 9, 1),
            evidence=[evidence],
        )
    peak_mb = peak_rss_mb()
    figures = {
        "history": history,
        "peak_rss_mb": peak_mb,
        "queries": len(queries.captured_queries),
        "recommendation_saves": len(saves),
        "audit_rows": LogEntry.objects.count() - audit_before,
        "cache_version_writes": len(version_writes),
    }
    for query in queries.captured_queries:
        print(query["sql"][:160])
    print(
        f"One record_status with one evidence item: {figures['queries']} queries, "
        f"{figures['recommendation_saves']} save(s) of the recommendation, "
        f"{figures['audit_rows']} audit row(s), "
        f"{figures['cache_version_writes']} cache-version write(s); {history} earlier changes, "
        f"peak RSS {peak_mb} MB."
    )
    return figures


if __name__ == "__main__":
    main()
