"""Benchmark a mixed read load on the public pages and the API while sources are checked.

Fills a scratch database (`<name>_loadbench` next to DATABASE_URL's) with the demo documents
and history, a large document of `--recommendations` recommendations (five status changes
and two evidence items each, at random; its page is the document page loaded) plus SOURCES
watched pages, serves the app with gunicorn on 127.0.0.1, and
keeps a checker process busy (`manage.py check_sources --all`, in a loop) against a local
site whose pages change every second, so versions and alerts are written during the load.
A second process (this one) then sends a bounded number of GETs, spread over the public
pages and the API. Public pages that answer 404 at startup (not built on this branch yet)
are skipped with a note.

All of it runs twice, each time in a fresh process: with a quarter of the large document's
recommendations and with all of them. Each prints the largest peak memory (RSS) of the
gunicorn workers, which should stay flat in the amount of data served.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/tracker .venv/bin/python bench/load.py
    [--recommendations 2000] [--requests 4000]
Needs gunicorn (pip install -e '.[server]'). The last line printed is one JSON object:
throughput, p50/p99 latency and errors (the goal is zero), and the checks done meanwhile.
"""

import argparse
import datetime
import http.server
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api import free_port, fresh_cache_url, percentile, start_gunicorn  # noqa: E402
from bench.memory import at_two_sizes, children_of, peak_rss_mb  # noqa: E402
from bench.scratch import (  # noqa: E402
    fill_history,
    postgres_url_or_none,
    recreate_postgres_database,
)

SOURCES = 200
# A watched page; its revision changes every second, so checks keep finding changes.
PAGE = """<!doctype html><html><head><title>Update {path}</title></head><body>
<main><article><h1>Processing update {path}</h1>
<p>The department announced revision {revision} of its processing guidance today, with new
offices, more staff and partners to identify people in need of protection.</p>
<p>Applications open next month; the guidance explains who is eligible and how to apply.</p>
</article></main></body></html>"""


def fill(database_url, site_port, recommendations):
    """Migrate and fill the scratch database; return the paths to load, by kind."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from tracker.demo import load_demo
    from tracker.models import Agency, Document, Recommendation, Source

    call_command("migrate", verbosity=0)
    load_demo()
    add_large_document(recommendations)
    Source.objects.bulk_create(
        Source(url=f"http://127.0.0.1:{site_port}/page-{n}", title=f"Page {n}")
        for n in range(SOURCES)
    )
    document = Document.objects.order_by("code").last()
    recommendation = document.recommendations.filter(is_published=True).first()
    agency = Agency.objects.filter(ownerships__isnull=False).distinct().first()
    return {
        "public": [
            "/",
            f"/documents/{document.code}/",
            f"/documents/{document.code}/recommendations/{recommendation.code}/",
            f"/agencies/{agency.slug}/",
            "/search/?q=asylum",
        ],
        "api": [
            "/api/v1/recommendations/?page_size=50",
            f"/api/v1/recommendations/{recommendation.pk}/",
            "/api/v1/documents/",
            "/api/v1/agencies/",
            "/api/v1/status-changes/",
            "/api/v1/progress/?interval=month&from=2020-01-01&to=2024-12-31",
        ],
        "recommendations": Recommendation.objects.count(),
    }


def add_large_document(count):
    """A document of `count` published recommendations with a random history, coded to come
    last (the document page the load reads)."""
    from tracker.models import Agency, Document, Publisher, Recommendation

    random.seed(17)
    publisher = Publisher.objects.create(name="Load benchmark publisher", acronym="LBP")
    document = Document.objects.create(
        code="ZZ-LOAD", title="A large report", publisher=publisher,
        published_on=datetime.date(2015, 1, 1),
    )  # fmt: skip
    recommendations = Recommendation.objects.bulk_create(
        (
            Recommendation(
                document=document,
                code=f"ZZ-{n}",
                section_title=f"Section {n // 100}",
                title=f"Recommendation {n} on asylum processing",
                text=f"The administration should act on matter {n}.",
                position=n,
                is_published=True,
            )
            for n in range(count)
        ),
        batch_size=5000,
    )
    fill_history(recommendations, list(Agency.objects.all()), changes=count * 5, evidence=count * 2)
    for recommendation in Recommendation.objects.filter(document=document):
        status, since = recommendation.current_status()
        Recommendation.objects.filter(pk=recommendation.pk).update(
            status=status, status_changed_on=since
        )


def serve_site(port):
    """The watched site, in a thread of this process: every page changes each second."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = PAGE.format(path=self.path, revision=int(time.time())).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def app_environment(database_url, site_port, cache_url):
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        # As in production: a shared cache, and static files collected under hashed names.
        "CACHE_URL": cache_url,
        "STATIC_ROOT": tempfile.mkdtemp(prefix="tracker-static-"),
        "SECRET_KEY": "benchmark-only-secret-key-" + "x" * 30,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "TRACKER_API_ANON_RATE": "100000000/minute",
        "TRACKER_FETCH_ALLOW": f"127.0.0.1:{site_port}",
        "LOG_LEVEL": "WARNING",
    }


def start_checker(env, log):
    """A process that checks every source, again and again, until it is stopped."""
    loop = f"while true; do {sys.executable} manage.py check_sources --all --concurrency 8; done"
    return subprocess.Popen(
        ["sh", "-c", loop], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )


def reachable(base, paths):
    """The paths that do not answer 404, noting the ones skipped."""
    kept = []
    with httpx.Client(timeout=30) as http:
        for path in paths:
            status = http.get(base + path).status_code
            if status == 404:
                print(f"note: {path} answers 404 on this branch; skipped", flush=True)
            else:
                kept.append(path)
    return kept


def load(base, paths, *, requests, threads):
    """Send `requests` GETs over `paths`, round robin, from `threads` keep-alive clients.

    Return (requests per second, latencies in ms by path, errors): an error is a status of
    400 or more, or no answer. Redirects count as answers (`/` redirects to the admin
    until the public pages arrive).
    """
    latencies = {path: [] for path in paths}
    errors = []
    lock = threading.Lock()
    per_thread = requests // threads

    def client(offset):
        with httpx.Client(timeout=30) as http:
            for n in range(per_thread):
                path = paths[(offset + n) % len(paths)]
                started = time.perf_counter()
                try:
                    status = http.get(base + path).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies[path].append(elapsed)
                    if not isinstance(status, int) or status >= 400:
                        errors.append((path, status))

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return sum(map(len, latencies.values())) / elapsed, latencies, errors


def count_checks(database_url):
    import psycopg

    with psycopg.connect(database_url) as db:
        versions = db.execute("SELECT count(*) FROM tracker_sourceversion").fetchone()[0]
        checked = db.execute(
            "SELECT count(*) FROM tracker_source WHERE last_checked_at IS NOT NULL"
        ).fetchone()[0]
    return versions, checked


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recommendations", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--without-checker", action="store_true", help="No checks meanwhile: the baseline."
    )
    parser.add_argument(
        "--cache-url",
        default="redis://127.0.0.1:6379/15",
        help="a Redis database the benchmark may empty, for the shared cache",
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
    if args.without_checker:
        options.append("--without-checker")
    figures = at_two_sizes(
        __file__, "--recommendations", args.recommendations, options,
        keys=("peak_rss_mb", "p50_ms"),
    )  # fmt: skip
    print(json.dumps(figures))


def run(args):
    url = postgres_url_or_none()
    if url is None:
        raise SystemExit("Set DATABASE_URL to a PostgreSQL server (the bench uses a scratch copy).")
    database_url = recreate_postgres_database(url, "loadbench")
    site_port, app_port = free_port(), free_port()
    site = serve_site(site_port)
    paths = fill(database_url, site_port, args.recommendations)
    env = app_environment(database_url, site_port, fresh_cache_url(args.cache_url))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    server = start_gunicorn(env, app_port, args.workers, ready_path="/api/v1/")
    checker_log = open(os.devnull, "w")  # noqa: SIM115 (closed in finally)
    checker = None if args.without_checker else start_checker(env, checker_log)
    base = f"http://127.0.0.1:{app_port}"
    try:
        public = reachable(base, paths["public"])
        api = reachable(base, paths["api"])
        mix = public + api
        load(base, mix, requests=min(args.requests, 100), threads=args.threads)  # warm up
        versions_before, _ = count_checks(database_url)
        rps, latencies, errors = load(base, mix, requests=args.requests, threads=args.threads)
        versions_after, checked = count_checks(database_url)
        # Each worker's peak over its whole life: start-up, warm-up and the load.
        workers_peak_mb = max(
            (peak for pid in children_of(server.pid) if (peak := peak_rss_mb(pid))), default=None
        )
    finally:
        if checker is not None:
            os.killpg(checker.pid, 15)
            checker.wait(10)
        checker_log.close()
        server.terminate()
        server.wait(10)
        site.shutdown()

    for path in mix:
        values = latencies[path]
        print(
            f"{path[:60]:60} p50 {statistics.median(values):7.1f} ms"
            f"   p99 {percentile(values, 0.99):7.1f} ms",
            flush=True,
        )
    everything = [value for values in latencies.values() for value in values]
    p50, p99 = statistics.median(everything), percentile(everything, 0.99)
    public_values = [value for path in public for value in latencies[path]]
    api_values = [value for path in api for value in latencies[path]]
    print(
        f"{len(everything)} requests over {len(mix)} URLs, {args.threads} clients: "
        f"{rps:.1f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {len(errors)} errors; "
        f"{versions_after - versions_before} new page versions kept meanwhile; "
        f"gunicorn workers' peak RSS {workers_peak_mb} MB at most "
        f"({args.recommendations} recommendations in the large document)",
        flush=True,
    )
    for path, status in errors[:5]:
        print(f"error: {path}: {status}", flush=True)
    result = {
        "recommendations": paths["recommendations"],
        "large_document_recommendations": args.recommendations,
        "peak_rss_mb": workers_peak_mb,  # the gunicorn workers' largest
        "requests": len(everything),
        "rps": round(rps, 1),
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "errors": len(errors),
        "public_urls": len(public),
        "public_p99_ms": round(percentile(public_values, 0.99), 1) if public_values else None,
        "api_urls": len(api),
        "api_p99_ms": round(percentile(api_values, 0.99), 1),
        "versions_kept_during_load": versions_after - versions_before,
        "sources_checked": checked,
        "checker": checker is not None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
