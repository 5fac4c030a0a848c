"""Benchmark digest sending: 10,000 confirmed subscribers over the demo data plus a week of
synthetic status changes and evidence, sent through Django's SMTP backend to an aiosmtpd sink
on 127.0.0.1 (in its own process, as a mail server would be).

Two runs of `send_due_digests` (what `send_digests --now` runs), each timed with every query
counted: one with a tenth of the subscribers active, then, from scratch, all of them. Queries
per digest must not grow with the number of subscribers; the goal is 200 digests per second.
Then a week later, after more changes, every digest shows how progress moved since the
previous one.
Then, from scratch again, `--workers` processes run it at the same time, as Celery workers
would: the sink must receive every digest exactly once.

All of it runs twice, each time in a fresh process: at a quarter of the subscribers and at
all of them. Each prints its peak memory (RSS) over the sending, set-up left out: memory
should stay flat in the number of subscribers, as the digests go out in batches.

Usage: .venv/bin/python bench/digests.py [--subscribers 10000] [--changes 60]
Uses a scratch database: `<name>_bench_digests` next to a PostgreSQL DATABASE_URL, else a
temporary SQLite file. The last line printed is one JSON object of the figures.
"""

import argparse
import asyncio
import datetime
import json
import multiprocessing
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import at_two_sizes, peak_rss_mb, start_peak  # noqa: E402
from bench.scratch import postgres_url_or_none, recreate_postgres_database  # noqa: E402

# Shares of subscribers who read Spanish, follow an agency, and are staff.
SPANISH_SHARE = 0.2
AGENCY_SHARE = 0.5
STAFF_SUBSCRIBERS = 10


# -- the SMTP sink: aiosmtpd processes sharing one port, counting what they accept ---------

# A mail server takes many connections at once; one pure-Python process would measure
# aiosmtpd rather than Tracker, so several share the port (SO_REUSEPORT).
SINK_PROCESSES = 2


def sink(port, ready, accepted):
    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with accepted.get_lock():
                accepted.value += 1
            return "250 OK"

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Handler(), hostname="sink.localhost"),
            "127.0.0.1",
            port,
            reuse_port=True,
        )
        ready.set()
        await server.serve_forever()

    asyncio.run(serve())


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_sink():
    port = free_port()
    accepted = multiprocessing.Value("i", 0)
    for _ in range(SINK_PROCESSES):
        ready = multiprocessing.Event()
        process = multiprocessing.Process(target=sink, args=(port, ready, accepted), daemon=True)
        process.start()
        if not ready.wait(10):
            raise SystemExit("the SMTP sink did not start")
    return port, accepted


# -- the data -----------------------------------------------------------------------------


def setup_django(smtp_port):
    if url := postgres_url_or_none():
        os.environ["DATABASE_URL"] = recreate_postgres_database(url, "bench_digests")
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    os.environ["EMAIL_HOST"] = "127.0.0.1"
    os.environ["EMAIL_PORT"] = str(smtp_port)
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_data(*, subscribers, changes, rng):
    """The demo, `changes` synthetic status changes (each with new evidence) recorded in the
    last days, and `subscribers` confirmed subscribers following documents and agencies."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from tracker.demo import load_demo
    from tracker.models import Agency, Document, Subscription

    load_demo()
    record_changes(changes, rng=rng, prefix="")

    documents = list(Document.objects.values_list("pk", flat=True))
    agencies = list(
        Agency.objects.filter(ownerships__isnull=False).distinct().values_list("pk", flat=True)
    )
    staff = [
        get_user_model().objects.create(username=f"staff{n}", is_staff=True)
        for n in range(STAFF_SUBSCRIBERS)
    ]
    confirmed = timezone.now() - datetime.timedelta(days=30)
    rows = Subscription.objects.bulk_create(
        Subscription(
            email=f"reader{n}@example.org",
            language="es" if rng.random() < SPANISH_SHARE else "en",
            confirmed_at=confirmed,
            user=staff[n] if n < STAFF_SUBSCRIBERS else None,
        )
        for n in range(subscribers)
    )
    follows_documents = Subscription.documents.through
    follows_agencies = Subscription.agencies.through
    follows_documents.objects.bulk_create(
        follows_documents(subscription_id=row.pk, document_id=rng.choice(documents)) for row in rows
    )
    follows_agencies.objects.bulk_create(
        follows_agencies(subscription_id=row.pk, agency_id=rng.choice(agencies))
        for row in rows
        if rng.random() < AGENCY_SHARE
    )
    return [row.pk for row in rows]


def record_changes(count, *, rng, prefix):
    """Record `count` status changes of random published recommendations, each with new
    evidence, effective today."""
    from django.utils import timezone

    from tracker.models import ASSESSMENTS, Evidence, Recommendation

    published = list(Recommendation.objects.filter(is_published=True))
    statuses = [s for s in ASSESSMENTS if s != Recommendation.Status.NOT_STARTED]
    today = timezone.localdate()
    for index in range(count):
        recommendation = rng.choice(published)
        evidence = Evidence.objects.create(
            title=f"Synthetic report {prefix}{index}",
            outlet="Bench Daily",
            url=f"https://news.example.org/bench/{prefix}{index}",
            published_on=today,
        )
        recommendation.record_status(
            rng.choice(statuses), effective_on=today, evidence=[evidence], by=None
        )


# -- the runs -----------------------------------------------------------------------------


def measured_run(label, expected, accepted, *, now=None):
    """Time one send_due_digests; `expected` digests sent (None: any number)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tracker.digests import send_due_digests

    before = accepted.value
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        outcomes = send_due_digests(current=True, now=now)
    elapsed = time.perf_counter() - started
    sent = outcomes.get("sent", 0)
    received = wait_for(accepted, before + sent) - before
    print(
        f"{label}: {dict(outcomes)} in {elapsed:.1f} s: {sent / elapsed:.0f} digests/s, "
        f"{len(queries)} queries ({len(queries) / max(sent, 1):.4f} per digest), "
        f"{received} received by the sink",
        flush=True,
    )
    if expected not in (None, sent) or received != sent:
        raise SystemExit(f"{label}: expected {expected} digests sent and received")
    return {"sent": sent, "seconds": elapsed, "queries": len(queries), "received": received}


def worker_run(_index):
    from tracker.digests import send_due_digests

    return dict(send_due_digests(current=True))


def parallel_run(workers, expected, accepted):
    """`workers` processes run the same send_due_digests at once: the claims share the
    digests out, and the sink must receive each exactly once."""
    from django.db import connections

    connections.close_all()  # each process opens its own
    before = accepted.value
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(worker_run, range(workers))
    elapsed = time.perf_counter() - started
    sent = sum(result.get("sent", 0) for result in results)
    received = wait_for(accepted, before + sent) - before
    print(
        f"{workers} workers at once: {results} in {elapsed:.1f} s: {sent / elapsed:.0f} "
        f"digests/s, {received} received by the sink",
        flush=True,
    )
    if sent != expected or received != expected:
        raise SystemExit(f"{workers} workers: expected {expected} digests sent exactly once")
    return {"per_s": sent / elapsed}


def wait_for(accepted, count, timeout=10):
    """The sink's running total, once it reaches `count` (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while accepted.value < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return accepted.value


def run(subscribers, changes, workers):
    port, accepted = start_sink()
    setup_django(port)
    from tracker.models import DigestDelivery, Subscription

    rng = random.Random(6)
    started = time.perf_counter()
    ids = load_data(subscribers=subscribers, changes=changes, rng=rng)
    print(f"setup: {subscribers} subscribers, {changes} synthetic changes in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip

    start_peak()  # the sending's peak, not the set-up's
    tenth = subscribers // 10
    away = datetime.datetime.now(datetime.UTC)
    Subscription.objects.filter(pk__in=ids[tenth:]).update(unsubscribed_at=away)
    small = measured_run(f"{tenth} subscribers", tenth, accepted)
    DigestDelivery.objects.all().delete()
    Subscription.objects.update(unsubscribed_at=None)
    full = measured_run(f"{subscribers} subscribers", subscribers, accepted)
    again = measured_run("a second run in the same period", 0, accepted)
    # A week on, after as many changes again: each digest compares progress with its last.
    record_changes(changes, rng=rng, prefix="next-")
    week_later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(weeks=1)
    moved = measured_run("a week later, with progress since", None, accepted, now=week_later)

    parallel = None
    if workers > 1:
        DigestDelivery.objects.all().delete()
        parallel = parallel_run(workers, subscribers, accepted)

    peak_mb = peak_rss_mb()
    print(f"peak RSS while sending to {subscribers} subscribers: {peak_mb} MB", flush=True)
    return {
        "subscribers": subscribers,
        "digests_per_s": round(full["sent"] / full["seconds"], 1),
        "queries_per_digest": round(full["queries"] / full["sent"], 4),
        "queries_per_digest_at_tenth": round(small["queries"] / small["sent"], 4),
        "queries_total": full["queries"],
        "queries_total_at_tenth": small["queries"],
        "seconds": round(full["seconds"], 2),
        "received_by_sink": full["received"],
        "sent_by_second_run": again["sent"],
        "week_later_sent": moved["sent"],
        "week_later_digests_per_s": round(moved["sent"] / moved["seconds"], 1),
        "week_later_queries_total": moved["queries"],
        "synthetic_changes": changes,
        "workers": workers,
        "digests_per_s_with_workers": parallel and round(parallel["per_s"], 1),
        "peak_rss_mb": peak_mb,
        "database": os.environ["DATABASE_URL"].split(":", 1)[0],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Processes running send_due_digests at once, as Celery workers would (1: skip).",
    )
    parser.add_argument(
        "--child", action="store_true", help=argparse.SUPPRESS
    )  # one measured run, in a fresh process so its peak memory is its own
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.subscribers, args.changes, args.workers)))
        return
    options = ["--changes", args.changes, "--workers", args.workers]
    print(json.dumps(at_two_sizes(__file__, "--subscribers", args.subscribers, options)))


if __name__ == "__main__":
    main()
