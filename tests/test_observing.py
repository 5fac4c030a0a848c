"""Observing sources in bulk: threads or processes, split by site, against real local servers."""

import os
import signal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.support.pages import ConcurrencyProbe, local_url, page
from tracker import observing
from tracker.models import ChangeAlert, Source, SourceVersion
from tracker.monitoring import (
    Outcome,
    check_sources,
    default_processes,
    host_slots,
    record_observations,
    watch_of,
)
from tracker.observing import HostShare, Watch, observe_all, share_out

pytestmark = pytest.mark.django_db


class Site(ConcurrencyProbe):
    """A local server whose pages are served slowly, counting requests in flight at once."""

    delay = 0.02

    def __init__(self, server):
        super().__init__()
        self.server = server
        self.revision = 0
        server.expect_request("/p").respond_with_handler(self.handler)

    def body(self, request):
        return page(f"{request.args['n']} at revision {self.revision}")

    def url(self, n):
        return local_url(self.server, f"/p?n={n}")


@pytest.fixture
def sites(monkeypatch):
    """Two local sites (two origins) that answer in parallel, let through the fetch guard."""
    servers = [HTTPServer(host="127.0.0.1", port=0, threaded=True) for _ in range(2)]
    for server in servers:
        server.start()
    allowed = ",".join(f"127.0.0.1:{server.port}" for server in servers)
    monkeypatch.setenv("TRACKER_FETCH_ALLOW", allowed)
    yield [Site(server) for server in servers]
    for server in servers:
        server.stop()


def watch(source_id, url):
    return Watch(source_id, url)


def test_sites_stay_whole_in_one_process_when_they_fit_and_shares_are_even():
    watches = (
        [watch(n, f"https://a.example.org/{n}") for n in range(6)]
        + [watch(10 + n, f"https://b.example.org/{n}") for n in range(4)]
        + [watch(20 + n, f"https://c.example.org:8443/{n}") for n in range(2)]
        + [watch(30, "https://C.example.org:8443/x")]
    )
    shares = share_out(watches, 2, per_host=4)
    assert sorted(len(share) for share, _ in shares) == [6, 7]
    hosts = [{w.url.split("/")[2].lower() for w in share} for share, _ in shares]
    assert hosts[0].isdisjoint(hosts[1])
    assert all(turns == {} for _, turns in shares)  # each site's turns all in one process
    assert sorted(w.source_id for share, _ in shares for w in share) == sorted(
        w.source_id for w in watches
    )
    assert share_out(watches[:1], 4, per_host=4) == [(watches[:1], {})]


def test_one_big_site_is_dealt_out_to_every_process_with_a_part_of_its_turns_each():
    watches = [watch(n, f"https://big.example.org/{n}") for n in range(100)]
    watches += [watch(200 + n, f"https://small.example.org/{n}") for n in range(4)]
    shares = share_out(watches, 2, per_host=4)
    assert sorted(len(share) for share, _ in shares) == [50, 54]
    origin = "big.example.org:443"
    assert [turns[origin] for _, turns in shares] == [HostShare(2, 0), HostShare(2, 2)]
    # Never more processes on a site than it has turns: each keeps at least one.
    spread = share_out(watches, 8, per_host=2)
    assert sum(origin in turns for _, turns in spread) == 2


def test_bulk_checks_use_processes_for_long_lists_only(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert default_processes(100) == 2
    assert default_processes(99) == 0
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert default_processes(1000) == 0


def make_sources(sites, per_site):
    return [Source.objects.create(url=site.url(n)) for site in sites for n in range(per_site)]


def test_a_bulk_check_from_processes_records_each_change_once_within_host_limits(sites):
    sources = make_sources(sites, 6)
    seen = []
    outcomes = check_sources(
        Source.objects.all(),
        concurrency=8,
        per_host=2,
        processes=2,
        progress=lambda source, result: seen.append(source.pk),
    )
    assert outcomes == {Outcome.FIRST_VERSION: 12}
    assert sorted(seen) == sorted(source.pk for source in sources)
    assert SourceVersion.objects.count() == 12
    assert [site.peak for site in sites] == [2, 2]  # four threads a process, two per host

    sites[0].revision = 1
    outcomes = check_sources(Source.objects.all(), concurrency=8, per_host=2, processes=2)
    assert outcomes == {Outcome.CHANGED: 6, Outcome.UNCHANGED: 6}
    alerts = ChangeAlert.objects.select_related("source")
    assert {alert.source.url for alert in alerts} == {sites[0].url(n) for n in range(6)}
    assert all("at revision 1" in alert.diff for alert in alerts)


def test_one_site_is_checked_from_every_process_within_its_request_limit(sites):
    site = sites[0]
    sources = [Source.objects.create(url=site.url(n)) for n in range(12)]
    fetched_by = set()
    probe = site.handler

    def handler(request):
        fetched_by.add(pid_of_client(int(request.environ["REMOTE_PORT"])))
        return probe(request)

    site.server.clear()
    site.server.expect_request("/p").respond_with_handler(handler)
    outcomes = check_sources(Source.objects.all(), concurrency=8, per_host=2, processes=2)
    assert outcomes == {Outcome.FIRST_VERSION: len(sources)}
    assert len(fetched_by) == 2 and os.getpid() not in fetched_by  # both processes worked
    assert site.peak <= 2  # the site's limit held across them


def test_processes_and_threads_observe_alike(sites):
    watches = [watch(n, sites[n % 2].url(n)) for n in range(8)]

    def observed(processes):
        batches = observe_all(
            watches, concurrency=4, slots=host_slots(), per_host=2, processes=processes
        )
        found = {o.watch.source_id: o for batch in batches for o in batch}
        return {pk: (o.read.content_hash, o.result.status_code) for pk, o in found.items()}

    in_threads = observed(0)
    assert len(in_threads) == 8
    assert observed(2) == in_threads


def pid_of_client(port):
    """Return the pid of the process whose TCP socket on 127.0.0.1 has local port `port`."""
    # A closed connection that used the port before lingers in TIME_WAIT, with no inode.
    inode = next(
        fields[9]
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if int(fields[1].split(":")[1], 16) == port and fields[9] != "0"
    )
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == f"socket:[{inode}]" for fd in fd_dir.iterdir()):
                return int(fd_dir.parent.name)
        except OSError:  # a process that ended, or one not ours to read
            continue
    raise LookupError(port)


def test_an_observing_process_killed_mid_check_fails_only_the_sources_it_had_left(sites):
    healthy, doomed = sites
    killed = []

    def kill_the_caller(request):
        if not killed:
            killed.append(pid_of_client(int(request.environ["REMOTE_PORT"])))
            assert killed[0] != os.getpid()
            os.kill(killed[0], signal.SIGKILL)
        return Response("gone", content_type="text/html")

    doomed.server.clear()
    doomed.server.expect_request("/p").respond_with_handler(kill_the_caller)
    survivors = [Source.objects.create(url=healthy.url(n)) for n in range(3)]
    victims = [Source.objects.create(url=doomed.url(n)) for n in range(3)]

    outcomes = check_sources(Source.objects.all(), concurrency=2, per_host=1, processes=2)

    assert killed
    assert outcomes == {Outcome.FIRST_VERSION: 3, Outcome.FAILED: 3}
    for source in survivors:
        source.refresh_from_db()
        assert source.content_hash and not source.last_error
    for source in victims:
        source.refresh_from_db()
        assert source.last_error == "the checking process stopped unexpectedly"
        assert source.consecutive_failures == 1


def test_a_bulk_check_takes_the_same_queries_for_few_sources_or_many(sites, monkeypatch):
    # One batch for all, however slowly they come: the batch still closes when all are in.
    monkeypatch.setattr(observing, "BATCH_WINDOW", 60)

    def queries_of_a_bulk_check(per_site):
        Source.objects.all().delete()
        make_sources(sites, per_site)
        sources = list(Source.objects.all())
        with CaptureQueriesContext(connection) as queries:
            outcomes = check_sources(sources, concurrency=4, per_host=2, processes=2)
        assert outcomes == {Outcome.FIRST_VERSION: 2 * per_site}
        return len(queries)

    assert queries_of_a_bulk_check(10) == queries_of_a_bulk_check(2)


def test_command_checks_from_processes_when_told(sites, capsys):
    make_sources(sites, 3)
    call_command("check_sources", "--all", "--processes", "2", "--concurrency", "4")
    out = capsys.readouterr().out
    assert "Checked 6 source(s)" in out and "6 first version" in out
    assert observing.last_process_peaks_kb  # the processes ran and reported


def parent_of(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def test_a_command_forks_its_observing_processes_so_their_cpu_counts_as_its_own(sites, tmp_path):
    """A command runs its main thread only, so it forks its observing processes: they start
    at once with everything loaded, and as its children their CPU time is the command's (a
    fork server's children are the server's, unseen by whoever times the command)."""
    import subprocess
    import sys

    site = sites[0]
    parents = set()
    probe = site.handler

    def handler(request):
        parents.add(parent_of(pid_of_client(int(request.environ["REMOTE_PORT"]))))
        return probe(request)

    site.server.clear()
    site.server.expect_request("/p").respond_with_handler(handler)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/fork.sqlite3"}
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
    urls = [site.url(n) for n in range(6)]
    create = f"from tracker.models import Source; [Source.objects.create(url=u) for u in {urls!r}]"
    subprocess.run([*manage, "shell", "-c", create], env=env, check=True)

    command = subprocess.Popen(
        [*manage, "check_sources", "--all", "--processes", "2", "--concurrency", "4"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = command.communicate(timeout=120)

    assert command.returncode == 0
    assert "Checked 6 source(s)" in out and "6 first version" in out
    assert parents == {command.pid}


@pytest.fixture
def refuse_version(django_db_blocker):
    """Make PostgreSQL refuse, as a unique violation, any kept version whose hash is in the
    table test_refused_hashes: what a batch meets when another checker inserted that version
    first (SQLite has no row locks to make it wait)."""
    statements = [
        "CREATE TABLE IF NOT EXISTS test_refused_hashes (hash text)",
        """CREATE OR REPLACE FUNCTION test_refuse_version() RETURNS trigger AS $$
        BEGIN
            IF NEW.content_hash IN (SELECT hash FROM test_refused_hashes) THEN
                RAISE unique_violation USING MESSAGE = 'inserted by another checker';
            END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql""",
        "CREATE TRIGGER test_refuse_version BEFORE INSERT ON tracker_sourceversion "
        "FOR EACH ROW EXECUTE FUNCTION test_refuse_version()",
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)

    def refuse(content_hash):
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO test_refused_hashes VALUES (%s)", [content_hash])

    return refuse


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="raises the collision with a PostgreSQL trigger",
)
def test_a_batch_that_collides_with_another_checker_records_the_rest(sites, refuse_version):
    sources = make_sources(sites[:1], 3)
    observations = [observing.observe(watch_of(source)) for source in sources]
    refuse_version(observations[1].read.content_hash)

    results = record_observations(observations)

    assert [result.outcome for result in results] == [
        Outcome.FIRST_VERSION,
        Outcome.UNCHANGED,  # the other checker recorded it
        Outcome.FIRST_VERSION,
    ]
    assert set(SourceVersion.objects.values_list("source", flat=True)) == {
        sources[0].pk,
        sources[2].pk,
    }
    sources[1].refresh_from_db()
    assert sources[1].content_hash == "" and sources[1].last_checked_at is None
