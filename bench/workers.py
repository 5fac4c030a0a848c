"""Benchmark the Celery path of source checks: checks a minute for 1, 2 and 4 worker processes,
and the dispatcher's own work at 100,000 sources.

Sources (default 10,000, all on a one-minute interval) watch pages served on 127.0.0.1 over 8
origins (bench/check_sources.py's page server); a first bulk pass keeps their baselines, so the
measured checks are the steady state: conditional GETs answered 304. For each worker count a
real `celery worker` (the default prefork pool, `--concurrency P`) consumes from a Redis server
of the benchmark's own while the dispatcher (`monitoring.queue_due_checks`, what beat runs
every minute) queues every due source; the figure is the checks recorded in a fixed window.

Then the dispatcher is timed as beat runs it, with 100,000 sources (`--dispatcher-sources`)
due over an hour (a one-hour interval): a minute's worth of due sources claimed and queued,
and a run with nothing due (the scan alone). It runs twice, each time in a fresh process of
its own database: with a quarter of those sources and with all of them, printing the
dispatcher's peak memory (RSS, set-up left out) at each; a minute's worth of due sources
grows with the sources, but the dispatcher claims and queues them a batch at a time, so its
memory should stay flat.

Usage: .venv/bin/python bench/workers.py [--n 10000] [--window 30] [--workers 1,2,4]
Needs a PostgreSQL DATABASE_URL (it uses `<name>_workers` and `<name>_dispatcher` next to
it) and redis-server on the PATH. The last line printed is one JSON object of the figures.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.check_sources import free_port, setup_django, start_server  # noqa: E402
from bench.memory import at_two_sizes, peak_rss_mb, start_peak  # noqa: E402
from bench.scratch import postgres_url_or_none, recreate_postgres_database  # noqa: E402


def start_redis():
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            return process, f"redis://127.0.0.1:{port}/0", client
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def start_worker(processes, env, log):
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "prefork",
        "--concurrency", str(processes), "--without-mingle", "--without-gossip",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure_workers(processes, *, window, env, redis_client):
    """Checks a minute recorded by `processes` worker processes over `window` seconds, with
    every source queued first (the dispatcher's time is its own figure)."""
    from django.utils import timezone

    from config.celery import app
    from tracker import monitoring
    from tracker.models import Source, SourceClaim

    SourceClaim.objects.all().delete()
    redis_client.flushdb()
    Source.objects.update(next_check_at=timezone.now())
    started = time.perf_counter()
    queued = monitoring.queue_due_checks()
    dispatch_s = time.perf_counter() - started
    with tempfile.TemporaryFile("w+") as log:
        worker = start_worker(processes, env, log)
        try:
            while not app.control.ping(timeout=0.5):
                time.sleep(0.2)
            started_at = timezone.now()
            started = time.perf_counter()
            time.sleep(window)
            checked = Source.objects.filter(last_checked_at__gte=started_at).count()
            elapsed = time.perf_counter() - started
        finally:
            stop(worker)
    per_minute = checked / elapsed * 60
    print(
        f"{processes} worker process(es): {checked} checks in {elapsed:.1f} s = "
        f"{per_minute:,.0f} checks/min (the dispatcher queued {queued} in {dispatch_s:.2f} s: "
        f"{dispatch_s / max(queued, 1) * 1000:.2f} ms each)",
        flush=True,
    )
    return round(per_minute), round(dispatch_s * 1000)


def measure_dispatcher(total, urls):
    """The dispatcher's work per minute at `total` sources due over an hour."""
    from django.db import connection
    from django.utils import timezone

    from tracker import monitoring
    from tracker.models import Source, SourceClaim

    now = timezone.now()
    existing = Source.objects.count()
    Source.objects.bulk_create(
        (
            Source(
                url=f"{urls[n % len(urls)]}?copy={n}", check_interval=datetime.timedelta(hours=1)
            )
            for n in range(existing, total)
        ),
        batch_size=5000,
    )
    # Due times spread evenly over the hour to come; then one minute passes.
    SourceClaim.objects.all().delete()
    count = Source.objects.count()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tracker_source SET check_interval = interval '1 hour', next_check_at = "
            "%s + (id - (SELECT MIN(id) FROM tracker_source)) * %s * interval '1 second'",
            [now, 3600 / count],
        )
    minute_later = now + datetime.timedelta(minutes=1)
    start_peak()  # the dispatcher's peak, not the set-up's
    started = time.perf_counter()
    queued = monitoring.queue_due_checks(now=minute_later)
    busy_s = time.perf_counter() - started
    started = time.perf_counter()
    assert monitoring.queue_due_checks(now=minute_later) == 0
    idle_s = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    print(
        f"dispatcher at {count:,} sources: a minute's {queued:,} due sources claimed and "
        f"queued in {busy_s * 1000:.0f} ms; a run with none due {idle_s * 1000:.0f} ms; "
        f"peak RSS {peak_mb} MB",
        flush=True,
    )
    return {
        "dispatcher_sources": count,
        "dispatcher_due_per_min": queued,
        "dispatcher_ms_per_min": round(busy_s * 1000),
        "dispatcher_idle_ms": round(idle_s * 1000),
        "peak_rss_mb": peak_mb,
    }


def dispatcher_run(database, broker, total):
    """The dispatcher alone at `total` sources, in a database of its own (a child process)."""
    os.environ["DATABASE_URL"] = recreate_postgres_database(database, "dispatcher")
    os.environ["CELERY_BROKER_URL"] = broker
    setup_django("127.0.0.1:9")
    urls = [f"http://127.0.0.1:9/p/{n}" for n in range(1000)]
    return measure_dispatcher(total, urls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per measurement")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts")
    parser.add_argument("--dispatcher-sources", type=int, default=100_000)
    parser.add_argument("--broker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--child", action="store_true", help=argparse.SUPPRESS
    )  # the dispatcher alone, in a fresh process so its peak memory is its own
    args = parser.parse_args()
    database = postgres_url_or_none()
    if not database:
        raise SystemExit("bench/workers.py needs a PostgreSQL DATABASE_URL (workers share it)")
    if args.child:
        print(json.dumps(dispatcher_run(database, args.broker, args.dispatcher_sources)))
        return
    if not shutil.which("redis-server"):
        raise SystemExit("bench/workers.py needs redis-server on the PATH")

    redis_process, broker, redis_client = start_redis()
    urls, _revisions, ports = start_server(args.n)
    os.environ["DATABASE_URL"] = recreate_postgres_database(database, "workers")
    os.environ["CELERY_BROKER_URL"] = broker
    allow = ",".join(f"127.0.0.1:{port}" for port in ports)
    setup_django(allow)
    env = {**os.environ, "TRACKER_FETCH_ALLOW": allow}
    try:
        from tracker.models import Source
        from tracker.monitoring import check_sources

        Source.objects.bulk_create(
            Source(url=url, check_interval=datetime.timedelta(minutes=1)) for url in urls
        )
        started = time.perf_counter()
        check_sources(list(Source.objects.all()))  # the baselines
        print(f"baselines of {args.n} pages: {time.perf_counter() - started:.1f} s", flush=True)

        throughput = {}
        for processes in [int(p) for p in args.workers.split(",")]:
            throughput[processes], _ = measure_workers(
                processes, window=args.window, env=env, redis_client=redis_client
            )
        redis_client.flushdb()
        dispatcher = at_two_sizes(
            __file__, "--dispatcher-sources", args.dispatcher_sources, ["--broker", broker]
        )
    finally:
        stop(redis_process)
    print(
        json.dumps(
            {
                "sources": args.n,
                "cpus": os.cpu_count(),
                "load_1min": round(os.getloadavg()[0], 2),
                "checks_per_min_by_worker_processes": throughput,
                **dispatcher,
            }
        )
    )


if __name__ == "__main__":
    main()
