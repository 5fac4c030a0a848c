"""Benchmark the API under gunicorn on 127.0.0.1 over a large PostgreSQL database.

Fills a scratch database (`<name>_apibench` next to DATABASE_URL's) with 10,000
recommendations, 100,000 status changes and 50,000 evidence items, serves the app with
gunicorn, and loads it from another process: the recommendation list (pages of 50), a
detail, a 10-year monthly progress series, and a trivial Django JSON view as the ceiling.
Reads are cached until the next write (tracker.caching), in the benchmark's own Redis
database; the "cold" runs ask for pages and series nobody asked for before, to show what a
read costs when it is built. Last, one client reads a list page and the series warm, right
after a status is recorded on a recommendation of that page, and right after any other write
(nothing left cached), one request at a time: what staff see after they record something.

All of it runs twice, each time in a fresh process with a fresh gunicorn: at a quarter of
`--recommendations` (status changes and evidence scaled alike) and at all of them. Each
prints the largest peak memory (RSS) of the gunicorn workers, which should stay flat in the
amount of data; the other figures are the full size's. The goals checked at the end: a cold
list page costs at most 3x a cached one; a cold progress series answers in under 50 ms at
the median and costs at most 3x a cached one; and each read right after a recorded status,
and right after any other write, at most 3x its warm read.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/tracker .venv/bin/python bench/api.py
    [--recommendations 10000]
Needs gunicorn (pip install -e '.[server]'). The last line printed is one JSON object.
"""

import argparse
import datetime
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import at_two_sizes, children_of, peak_rss_mb  # noqa: E402
from bench.scratch import (  # noqa: E402
    fill_history,
    postgres_url_or_none,
    recreate_postgres_database,
)

RECOMMENDATIONS = 10_000
# Per recommendation: status changes and evidence items (100,000 and 50,000 at full size).
CHANGES_EACH = 10
EVIDENCE_EACH = 5
DOCUMENTS = 20
PAGE_SIZE = 50
# The reads after writes reported: after a recorded status, after any other write.
AFTER_WRITES = {"after_status": "status", "after_write": "any"}
# The goals: a cold read at most this many times a cached one; a cold series under this.
COLD_OVER_WARM_AT_MOST = 3
COLD_PROGRESS_P50_UNDER_MS = 50


def scratch_database():
    url = postgres_url_or_none()
    if url is None:
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the bench uses a scratch copy).")
    return recreate_postgres_database(url, "apibench")


def fill(database_url, recommendations_wanted):
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from tracker.models import (
        Agency,
        Document,
        Publisher,
        Recommendation,
    )

    call_command("migrate", verbosity=0)
    random.seed(7)
    started = time.perf_counter()
    publisher = Publisher.objects.create(name="Benchmark publisher", acronym="BP")
    agencies = Agency.objects.bulk_create(
        Agency(name=f"Agency {i}", acronym=f"AG{i}", slug=f"ag{i}") for i in range(30)
    )
    per_document = recommendations_wanted // DOCUMENTS
    recommendations = []
    for d in range(DOCUMENTS):
        document = Document.objects.create(
            code=f"BP-{d}",
            title=f"Report {d}",
            publisher=publisher,
            published_on=datetime.date(2015, 1, 1) + datetime.timedelta(days=90 * d),
        )
        parents = Recommendation.objects.bulk_create(
            Recommendation(
                document=document,
                code=f"BP-{d}-{p}",
                title=f"Recommendation {p}",
                text=f"The administration should act on matter {p} of report {d}.",
                position=p,
                is_published=True,
            )
            for p in range(per_document // 5)
        )
        recommendations += parents
        recommendations += Recommendation.objects.bulk_create(
            Recommendation(
                document=document,
                parent=parents[c % len(parents)],
                code=f"BP-{d}-{c % len(parents)}.{c}",
                title=f"Sub-recommendation {c}",
                text=f"The agency should take step {c} of report {d}.",
                position=len(parents) + c,
                is_published=True,
            )
            for c in range(per_document - len(parents))
        )
    fill_history(
        recommendations,
        agencies,
        changes=CHANGES_EACH * len(recommendations),
        evidence=EVIDENCE_EACH * len(recommendations),
    )
    from django.db import connection

    # Bulk history skips record_status: set each current status as it would have.
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE tracker_recommendation AS r SET status = latest.status,
                   status_changed_on = latest.effective_on
               FROM (SELECT DISTINCT ON (recommendation_id) recommendation_id, status,
                            effective_on
                     FROM tracker_statuschange
                     ORDER BY recommendation_id, effective_on DESC, recorded_at DESC, id DESC
                    ) AS latest
               WHERE latest.recommendation_id = r.id"""
        )
        # As autovacuum leaves a table soon after a bulk write: statistics, and the visibility
        # map that lets index-only scans skip the table.
        cursor.execute("VACUUM ANALYZE")
    print(f"filled in {time.perf_counter() - started:.1f} s", flush=True)
    return recommendations[len(recommendations) // 2].pk


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_cache_url(url):
    """Empty the benchmark's own Redis database, so that every cached read starts cold."""
    import redis

    redis.Redis.from_url(url).flushdb()
    return url


def serve(database_url, port, workers, cache_url):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CACHE_URL": cache_url,
        "STATIC_ROOT": str(ROOT / "staticfiles"),  # only the API is measured: no static files
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "SECRET_KEY": "benchmark-only-secret-key-" + "x" * 30,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "TRACKER_API_ANON_RATE": "100000000/minute",
        "LOG_LEVEL": "WARNING",
    }
    return start_gunicorn(env, port, workers, ready_path="/bench/trivial/")


def start_gunicorn(env, port, workers, *, ready_path):
    """Serve the app with gunicorn on 127.0.0.1:`port`; return the process once `ready_path`
    answers."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [str(gunicorn), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def load(urls, *, requests, threads):
    """Send `requests` GETs (cycling through `urls`) from `threads` keep-alive clients;
    return (rps, latencies ms)."""
    latencies, errors = [], []
    lock = threading.Lock()
    per_thread = requests // threads
    urls = [urls] if isinstance(urls, str) else urls
    chosen = itertools.cycle(urls)

    def client():
        with httpx.Client(timeout=30) as http:
            for _ in range(per_thread):
                with lock:
                    url = next(chosen)
                started = time.perf_counter()
                response = http.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 200:
                        errors.append(response.status_code)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{urls[0]}: {len(errors)} errors, e.g. HTTP {errors[0]}")
    return len(latencies) / elapsed, latencies


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recommendations", type=int, default=RECOMMENDATIONS)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cache-url",
        default="redis://127.0.0.1:6379/15",
        help="a Redis database the benchmark may empty, for the response cache",
    )
    parser.add_argument(
        "--child", action="store_true", help=argparse.SUPPRESS
    )  # one measured run, in a fresh process so its peak memory is its own
    args = parser.parse_args()
    if args.child:
        run(args)
        return
    options = ["--requests", args.requests, "--threads", args.threads, "--workers", args.workers,
               "--cache-url", args.cache_url]  # fmt: skip
    result = at_two_sizes(__file__, "--recommendations", args.recommendations, options)
    print_goals(result)
    print(json.dumps(result))


def print_goals(result):
    """Say whether the full size's figures meet the goals for cold reads."""
    list_ratio, progress_ratio = result["list_cold_vs_warm"], result["progress_cold_vs_warm"]
    cold_progress = result["progress_cold_p50_ms"]
    goals = [
        (
            f"cold list p50 at most {COLD_OVER_WARM_AT_MOST}x warm",
            f"{result['list_cold_p50_ms']} ms vs {result['list_p50_ms']} ms: {list_ratio}x",
            list_ratio <= COLD_OVER_WARM_AT_MOST,
        ),
        (
            f"cold progress p50 under {COLD_PROGRESS_P50_UNDER_MS} ms and at most "
            f"{COLD_OVER_WARM_AT_MOST}x warm",
            f"{cold_progress} ms vs {result['progress_p50_ms']} ms: {progress_ratio}x",
            cold_progress < COLD_PROGRESS_P50_UNDER_MS and progress_ratio <= COLD_OVER_WARM_AT_MOST,
        ),
    ]
    for name in ("list", "progress"):  # the same goal for the read right after a write
        for after, what in (("after_status", "a recorded status"), ("after_write", "any write")):
            ratio = result[f"{name}_{after}_vs_warm"]
            goals.append(
                (
                    f"{name} right after {what} (one client) at most "
                    f"{COLD_OVER_WARM_AT_MOST}x warm",
                    f"{result[f'{name}_{after}_p50_ms']} ms: {ratio}x",
                    ratio <= COLD_OVER_WARM_AT_MOST,
                )
            )
    for goal, figures, met in goals:
        print(f"goal: {goal}: {figures}: {'met' if met else 'NOT met'}", flush=True)


def after_writes(urls, *, samples=20):
    """Return {name: {"warm", "status", "any"}}: p50s in ms, one client, one request at a
    time, of each read warm, right after a status is recorded and right after any other
    write: the reads staff make right after they record something.

    The status is recorded as staff record it (Recommendation.record_status, committed) on a
    sub-recommendation of the list page read, so that its parent's roll-up moves too. Any
    other write is what every other write's commit does to the cache
    (tracker.caching.new_version): nothing kept stays valid, counts and trees included."""
    from django.utils import timezone

    from tracker.caching import new_version
    from tracker.models import Recommendation

    figures = {}
    with httpx.Client(timeout=30) as http:
        ids = [row["id"] for row in http.get(urls["list"]).json()["results"]]
        recorded = Recommendation.objects.filter(pk__in=ids, parent__isnull=False).first()
        statuses = [Recommendation.Status.IN_PROGRESS, Recommendation.Status.PARTIAL]
        for name, url in urls.items():
            times = {"warm": [], "status": [], "any": []}

            def read(kind, url=url, times=times):
                started = time.perf_counter()
                http.get(url).raise_for_status()
                times[kind].append((time.perf_counter() - started) * 1000)

            http.get(url)
            for sample in range(samples):
                read("warm")
                recorded.record_status(
                    statuses[sample % 2], effective_on=timezone.localdate(), rationale="Bench."
                )
                read("status")
                read("warm")
                new_version()
                read("any")
            figures[name] = {kind: statistics.median(values) for kind, values in times.items()}
            print(
                f"{name} warm {figures[name]['warm']:.1f} ms; right after a recorded status "
                f"{figures[name]['status']:.1f} ms; after any other write "
                f"{figures[name]['any']:.1f} ms (one client, p50)",
                flush=True,
            )
    return figures


def run(args):
    """Fill, serve and measure at `args.recommendations`; print the figures as JSON last."""
    # The bench shares the server's cache, to stand in for writes (after_writes).
    os.environ["CACHE_URL"] = args.cache_url
    database_url = scratch_database()
    detail_id = fill(database_url, args.recommendations)
    port = free_port()
    server = serve(database_url, port, args.workers, fresh_cache_url(args.cache_url))
    base = f"http://127.0.0.1:{port}"
    pages = args.recommendations // PAGE_SIZE
    series = f"{base}/api/v1/progress/?interval=month&from=2015-01-01"
    progress = f"{series}&to=2024-12-31"
    # The cold runs ask for what nobody asked before: each page once, each series once.
    targets = {
        "trivial": f"{base}/bench/trivial/",
        "list_cold": [
            f"{base}/api/v1/recommendations/?page_size={PAGE_SIZE}&page={n}"
            for n in range(1, pages + 1)
        ],
        "list": f"{base}/api/v1/recommendations/?page_size={PAGE_SIZE}",
        "detail": f"{base}/api/v1/recommendations/{detail_id}/",
        "progress_cold": [f"{series}&to=2024-12-{day:02}" for day in range(1, 25)],
        "progress": progress,
    }
    figures = {}
    try:
        for name, url in targets.items():
            cold = name.endswith("_cold")
            if cold:
                requests = len(url)
            else:
                requests = args.requests if name != "progress" else max(args.requests // 4, 40)
                load(url, requests=min(requests, 50), threads=args.threads)  # warm up
            rps, latencies = load(url, requests=requests, threads=args.threads)
            p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
            figures[name] = (rps, p50, p99)
            print(f"{name:9} {rps:8.1f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms", flush=True)
        page = f"{base}/api/v1/recommendations/?page_size={PAGE_SIZE}&page={pages // 2}"
        after_write = after_writes({"list": page, "progress": progress})
        # Each worker's peak over its whole life: start-up, warm-ups and every load above.
        workers_peak_mb = max(
            (peak for pid in children_of(server.pid) if (peak := peak_rss_mb(pid))), default=None
        )
    finally:
        server.terminate()
        server.wait(10)
    print(
        f"gunicorn workers' peak RSS {workers_peak_mb} MB at most "
        f"({args.recommendations} recommendations)",
        flush=True,
    )
    result = {
        "recommendations": args.recommendations,
        "peak_rss_mb": workers_peak_mb,  # the gunicorn workers' largest
        "list_rps": round(figures["list"][0], 1),
        "trivial_rps": round(figures["trivial"][0], 1),
        "list_ratio": round(figures["list"][0] / figures["trivial"][0], 2),
        "list_p50_ms": round(figures["list"][1], 1),
        "list_p99_ms": round(figures["list"][2], 1),
        "detail_rps": round(figures["detail"][0], 1),
        "progress_p50_ms": round(figures["progress"][1], 1),
        "list_cold_rps": round(figures["list_cold"][0], 1),
        "list_cold_p50_ms": round(figures["list_cold"][1], 1),
        "progress_cold_p50_ms": round(figures["progress_cold"][1], 1),
        "progress_rps": round(figures["progress"][0], 1),
        "list_cold_vs_warm": round(figures["list_cold"][1] / figures["list"][1], 2),
        "progress_cold_vs_warm": round(figures["progress_cold"][1] / figures["progress"][1], 2),
        **{
            f"{name}_{after}_p50_ms": round(reads[kind], 1)
            for name, reads in after_write.items()
            for after, kind in AFTER_WRITES.items()
        },
        **{
            f"{name}_{after}_vs_warm": round(reads[kind] / reads["warm"], 2)
            for name, reads in after_write.items()
            for after, kind in AFTER_WRITES.items()
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
