"""Benchmark source checks against N pages served on 127.0.0.1.

Pages are spread over 8 origins (ports of 127.0.0.1). Passes, each over the same N sources
with Tracker's bulk checker (`check_sources`, what `manage.py check_sources` runs; with
100 sources or more it observes them from one process per CPU and records from this one):
  first      every page fetched, extracted, hashed and kept as a first version
  changed    a tenth of the pages changed (new versions and alerts), the rest answer 304
  not-mod    every page answers 304
  slow       a second site that delays every response by 200 ms (concurrency must hide it)
and, as the ceiling, a bare concurrent httpx GET loop over the same URLs.

Then, as a user runs it, `manage.py check_sources` (start-up included): with nothing due (its
start-up alone) and over the all-304 pages; and urlwatch's unchanged pass over the same pages,
when it is installed (`pip install -e '.[bench]'`). Last, the first pass again with every page
on one site, which the checker deals out to every process (goal: within 1.2x of eight sites).

Usage: .venv/bin/python bench/check_sources.py [--n 1000] [--concurrency 16] [--processes P]
`ratio` compares the first pass with the bare loop (both download every page in full);
the changed and all-304 passes have their own ratios. Peak memory is this process's and,
separately, the largest of the observing processes'.
Uses a scratch database: `<name>_bench` next to a PostgreSQL DATABASE_URL, else a temporary
SQLite file. The last line printed is one JSON object of the figures.
"""

import argparse
import asyncio
import compileall
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.memory import at_two_sizes  # noqa: E402
from bench.scratch import postgres_url_or_none, recreate_postgres_database  # noqa: E402

SLOW_DELAY = 0.2
# Pages are spread over this many origins (ports), as a real watch list spans many sites;
# Tracker allows at most monitoring.MAX_REQUESTS_PER_HOST requests at once per origin.
ORIGINS = 8
# A realistic small article page: menu, main text, footer.
PAGE = """<!doctype html><html><head><title>Release {i}</title></head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/about">About</a></nav>
<main><article><h1>Press release {i}</h1>
<p>The department announced today, in release number {i}, revision {rev}, that it will expand
processing for people seeking protection in the region, with new offices and staff.</p>
<p>Officials said applications will open next month and that partners including UNHCR and IOM
will help identify people in need of protection and refer them for processing.</p>
</article></main><footer>Copyright. Privacy. Contact.</footer></body></html>"""


# -- the page server: asyncio, keep-alive, ETag + 304, in its own process -------------------


def serve(ports, ready, revisions, delay):
    async def handle(reader, writer):
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                lines = request.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                index = int(path.rsplit("/", 1)[1]) if path.startswith("/p/") else -1
                if delay:
                    await asyncio.sleep(delay)
                if index < 0:
                    body, status, etag = b"not found", "404 Not Found", ""
                else:
                    rev = revisions[index]
                    etag = f'"{index}-{rev}"'
                    if headers.get("If-None-Match") == etag:
                        writer.write(
                            f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\n"
                            "Content-Length: 0\r\n\r\n".encode()
                        )
                        await writer.drain()
                        continue
                    body = PAGE.format(i=index, rev=rev).encode()
                    status = "200 OK"
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                    f"ETag: {etag}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        servers = [
            await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024) for port in ports
        ]
        ready.set()
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(main())


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(n, *, delay=0.0, origins=ORIGINS):
    """Serve pages /p/0 … /p/n-1 on `origins` ports; return (page URLs, revisions, ports)."""
    ports = [free_port() for _ in range(origins)]
    revisions = multiprocessing.Array("i", n, lock=False)
    ready = multiprocessing.Event()
    process = multiprocessing.Process(
        target=serve, args=(ports, ready, revisions, delay), daemon=True
    )
    process.start()
    if not ready.wait(10):
        raise SystemExit("the page server did not start")
    urls = [f"http://127.0.0.1:{ports[i % origins]}/p/{i}" for i in range(n)]
    return urls, revisions, ports


# -- the database -------------------------------------------------------------------------


def scratch_database():
    if url := postgres_url_or_none():
        return recreate_postgres_database(url, "bench")
    return f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"


def setup_django(allow):
    os.environ["TRACKER_FETCH_ALLOW"] = allow
    # As a deployed checker runs: DEBUG off (on, every query and its parameters are kept).
    os.environ["SECRET_KEY"] = "benchmark-only-secret-key-" + "x" * 30
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# -- passes -------------------------------------------------------------------------------


def timed(label, function):
    started = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - started
    print(f"{label}: {elapsed:.2f} s", flush=True)
    return elapsed, result


def bare_loop(urls, concurrency):
    import httpx

    with httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client:

        def get(url):
            return client.get(url).status_code

        with ThreadPoolExecutor(concurrency) as pool:
            statuses = list(pool.map(get, urls))
    assert all(status == 200 for status in statuses), "the bare loop saw errors"


def run(n, concurrency, processes):
    urls, revisions, ports = start_server(n)
    slow_n = min(n, 200)
    slow_urls, _revisions, slow_ports = start_server(slow_n, delay=SLOW_DELAY)
    one_site_urls, _revisions, one_site_ports = start_server(n, origins=1)
    os.environ["DATABASE_URL"] = scratch_database()
    setup_django(",".join(f"127.0.0.1:{port}" for port in ports + slow_ports + one_site_ports))

    from tracker import observing
    from tracker.models import ChangeAlert, Source
    from tracker.monitoring import check_sources

    Source.objects.bulk_create(Source(url=url) for url in urls)
    process_peaks_kb = []

    def tracker_pass():
        outcomes = check_sources(
            list(Source.objects.all()), concurrency=concurrency, processes=processes
        )
        process_peaks_kb.extend(observing.last_process_peaks_kb)
        return outcomes

    first_s, first = timed("first pass", tracker_pass)
    for index in range(0, n, 10):
        revisions[index] += 1
    changed_s, changed = timed("changed pass", tracker_pass)
    not_modified_s, not_modified = timed("all-304 pass", tracker_pass)
    bare_s, _ = timed("bare httpx loop", lambda: bare_loop(urls, concurrency))
    alerts = ChangeAlert.objects.count()

    side_by_side = compare_with_urlwatch(urls, revisions)

    Source.objects.all().delete()
    Source.objects.bulk_create(Source(url=url) for url in slow_urls)
    slow_s, _ = timed(f"slow pass ({slow_n} pages, 200 ms each)", tracker_pass)

    # The same first pass with every page on one site: its request limit (4 at once) binds,
    # and the pages are dealt out to every observing process all the same.
    Source.objects.all().delete()
    Source.objects.bulk_create(Source(url=url) for url in one_site_urls)
    one_site_s, _ = timed(f"first pass, one site ({n} pages)", tracker_pass)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    process_peak_mb = max(process_peaks_kb, default=0) / 1024
    print(
        f"observing processes: {len(observing.last_process_peaks_kb)}, "
        f"peak RSS {process_peak_mb:.1f} MB each at most (forked from this process: its pages"
        f" count in theirs until written); this process {peak_rss_mb:.1f} MB"
    )
    print(f"outcomes: first {dict(first)}, changed {dict(changed)}, 304 {dict(not_modified)}")
    print(f"alerts raised by the changed pass: {alerts} (expected {len(range(0, n, 10))})")
    print(
        f"slow pass: {slow_n / slow_s:.0f} checks/s; one at a time it would take "
        f"{slow_n * SLOW_DELAY:.0f} s, it took {slow_s:.1f} s"
    )
    return {
        "n": n,
        "concurrency": concurrency,
        "processes": processes if processes is not None else "default",
        "first_pass_per_s": round(n / first_s, 1),
        "changed_pass_per_s": round(n / changed_s, 1),
        "not_modified_pass_per_s": round(n / not_modified_s, 1),
        "not_modified_pass_s": round(not_modified_s, 2),
        "bare_loop_per_s": round(n / bare_s, 1),
        # Both do a full GET of every page: the strictest like-for-like comparison.
        "ratio": round(bare_s / first_s, 2),
        "changed_pass_ratio": round(bare_s / changed_s, 2),
        "not_modified_pass_ratio": round(bare_s / not_modified_s, 2),
        "slow_pass_per_s": round(slow_n / slow_s, 1),
        "first_pass_s": round(first_s, 2),
        "one_site_first_pass_s": round(one_site_s, 2),
        # Goal: at most 1.2 (one site uses every core as eight sites do).
        "one_site_vs_eight_sites": round(one_site_s / first_s, 2),
        **side_by_side,
        "alerts": alerts,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "observing_process_peak_rss_mb": round(process_peak_mb, 1),
        "database": os.environ["DATABASE_URL"].split(":", 1)[0],
    }


def run_command(*args):
    """Run `manage.py check_sources` as a user does; return (wall s, CPU s, stdout)."""
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check_sources", *args, "-v", "0"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def urlwatch_runner(urls):
    """Return a function running urlwatch once over `urls` (wall s, CPU s), or None when it
    is not installed (`pip install -e '.[bench]'`)."""
    import shutil
    import subprocess

    binary = shutil.which("urlwatch", path=str(Path(sys.executable).parent))
    if not binary:
        return None
    folder = Path(tempfile.mkdtemp())
    (folder / "urls.yaml").write_text(
        "\n---\n".join(f"name: p{i}\nurl: {url}" for i, url in enumerate(urls)) + "\n"
    )
    command = [
        binary, "--urls", folder / "urls.yaml", "--config", folder / "urlwatch.yaml",
        "--hooks", folder / "hooks.py", "--cache", folder / "cache.db",
    ]  # fmt: skip

    def run():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        env = {**os.environ, "EDITOR": "true", "VISUAL": "true"}
        subprocess.run(command, capture_output=True, check=True, env=env)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    return run


def compare_with_urlwatch(urls, revisions):
    """The whole command as a user runs it, start-up included, side by side with urlwatch
    over the same pages, passes interleaved: with nothing due (the command's start-up
    alone), every page unchanged, then a tenth of them changed."""
    n = len(urls)
    # Installed (pip install ., the Docker image), the app's modules are byte-compiled, as
    # urlwatch's are; an editable install under PYTHONDONTWRITEBYTECODE would compile them
    # again at every start (about 40 ms here).
    for package in ("config", "tracker"):
        compileall.compile_dir(ROOT / package, quiet=1)
    startup_wall, startup_cpu, _ = min(run_command("--due") for _ in range(3))
    print(f"manage.py check_sources start-up: {startup_wall:.2f} s wall, {startup_cpu:.2f} s CPU")
    figures = {
        "command_startup_s": round(startup_wall, 2),
        "command_startup_cpu_s": round(startup_cpu, 2),
    }
    urlwatch = urlwatch_runner(urls)
    if urlwatch is None:
        print("urlwatch: not installed (pip install -e '.[bench]'), not compared", flush=True)
    else:
        urlwatch()  # its first run keeps every page
    for name in ("unchanged", "changed"):
        if name == "changed":
            for index in range(0, n, 10):
                revisions[index] += 1
        wall, cpu, _ = run_command("--all")
        line = f"{name} pass of {n} pages: check_sources {wall:.2f} s, {cpu / n * 1000:.2f} ms CPU"
        figures[f"command_{name}_pass_s"] = round(wall, 2)
        figures[f"command_{name}_cpu_ms_per_check"] = round(cpu / n * 1000, 2)
        if urlwatch:
            their_wall, their_cpu = urlwatch()
            line += (
                f" a check; urlwatch {their_wall:.2f} s, {their_cpu / n * 1000:.2f} ms CPU a "
                f"check; wall ratio {wall / their_wall:.2f} (goal: at most 0.6)"
            )
            figures[f"urlwatch_{name}_pass_s"] = round(their_wall, 2)
            figures[f"urlwatch_{name}_cpu_ms_per_check"] = round(their_cpu / n * 1000, 2)
            figures[f"command_vs_urlwatch_{name}"] = round(wall / their_wall, 2)
        print(line, flush=True)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="observing processes (default: check_sources' own choice; 0: threads only)",
    )
    parser.add_argument(
        "--child", action="store_true", help=argparse.SUPPRESS
    )  # one measured run, in a fresh process so its peak memory is its own
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(args.n, args.concurrency, args.processes)))
        return

    options = ["--concurrency", args.concurrency]
    if args.processes is not None:
        options += ["--processes", args.processes]
    result = at_two_sizes(
        __file__,
        "--n",
        args.n,
        options,
        keys=("peak_rss_mb", "observing_process_peak_rss_mb"),
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
