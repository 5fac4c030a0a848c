"""A scratch database for a benchmark, so that it never touches real data."""

import datetime
import os
import random


def recreate_postgres_database(url, suffix):
    """Drop and create `<name>_<suffix>` on the server of PostgreSQL `url`; return its URL."""
    import psycopg

    base, _, name = url.rpartition("/")
    scratch = f"{name or 'tracker'}_{suffix}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{scratch}"')
    return f"{base}/{scratch}"


def postgres_url_or_none():
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgres") else None


def fill_history(recommendations, agencies, *, changes, evidence, evidence_title="News {}"):
    """Give each recommendation a random lead among `agencies`, and the set `changes` random
    status changes from 2015 to 2024 and `evidence` pieces of evidence, each on a random
    recommendation (seed `random` first). Statuses stay to be set from the history; the
    progress ledger is rebuilt from it."""
    from django.core.management import call_command
    from django.utils import timezone

    from tracker.models import ASSESSMENTS, Evidence, Ownership, StatusChange

    Ownership.objects.bulk_create(
        Ownership(recommendation=r, agency=random.choice(agencies), role="lead")
        for r in recommendations
    )
    statuses = [choice.value for choice in ASSESSMENTS]  # what a change can record
    now = timezone.now()
    StatusChange.objects.bulk_create(
        (
            StatusChange(
                recommendation=random.choice(recommendations),
                status=random.choice(statuses),
                effective_on=datetime.date(2015, 1, 1)
                + datetime.timedelta(days=random.randrange(3650)),
                rationale="Benchmark history.",
                recorded_at=now,
            )
            for _ in range(changes)
        ),
        batch_size=5000,
    )
    items = Evidence.objects.bulk_create(
        (
            Evidence(
                title=evidence_title.format(e), outlet="Wire", url=f"https://news.example.org/{e}"
            )
            for e in range(evidence)
        ),
        batch_size=5000,
    )
    links = Evidence.recommendations.through
    links.objects.bulk_create(
        (links(evidence=item, recommendation=random.choice(recommendations)) for item in items),
        batch_size=5000,
    )
    # Bulk history skips record_status, which keeps the progress ledger: compute it whole.
    call_command("rebuild_progress")
