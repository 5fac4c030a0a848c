"""Look at watched sources: fetch each once and read what it says, writing nothing.

No Django models or settings, so that bulk checks can spread the work over processes:
fetching and extraction are most of a check's CPU, and threads of one process cannot share
it out. `tracker.monitoring` records what is observed here, and sets the per-host limit
that `HostSlots` keeps for every check.
"""

import contextlib
import gc
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import resource
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from . import extracting, fetching

logger = logging.getLogger(__name__)

# How long a batch of observations stays open for more, and how many it takes at most.
BATCH_WINDOW = 0.25  # seconds
BATCH_SIZE = 200
# A process sends what it observed this often, so the recorder always has work.
PROCESS_BATCH_WINDOW = 0.05  # seconds


@dataclass(frozen=True)
class Watch:
    """What looking at a source needs: no ORM objects, so that it crosses processes."""

    source_id: int
    url: str
    etag: str = ""
    last_modified: str = ""
    is_feed: bool = False


@dataclass(frozen=True)
class Observation:
    """What one look at a source showed: a 304, a page or feed read, or a failure."""

    watch: Watch
    result: fetching.FetchResult | None = None  # None when the look failed; its text dropped
    read: extracting.Extract | None = None  # what a 200's body says
    error: str = ""
    retryable: bool = False

    @property
    def failed(self):
        return self.result is None

    @property
    def not_modified(self):
        return not self.failed and self.result.not_modified


def observe(watch, *, clients=None):
    """Fetch `watch`'s URL once, conditionally (ETag, Last-Modified), and read a 200's body
    as a page or a feed. Failures, expected or not, come back as observations too.

    `clients` (fetching.HostClients) lets one thread's fetches of a host share a connection.
    """
    try:
        result = fetching.fetch(
            watch.url, etag=watch.etag, last_modified=watch.last_modified, clients=clients
        )
        if result.not_modified:
            return Observation(watch, result)
        read = extracting.extract(result.text, is_feed=watch.is_feed, url=result.url)
    except fetching.FetchError as error:
        return Observation(watch, error=error.reason, retryable=error.retryable)
    except Exception as error:
        # Whatever a hostile page does to a parser must not wedge its source: record it.
        logger.exception("unexpected error checking %s", watch.url)
        reason = f"unexpected error: {type(error).__name__}: {error}"[:1000]
        return Observation(watch, error=reason)
    # The body is read: keeping it would only weigh on memory and on the trip back.
    return Observation(watch, replace(result, text=""), read)


def origin_of(url):
    """Return "host:port" of `url`: the unit the per-host request limit counts."""
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:  # an impossible port: the fetch guard refuses the URL with a reason
        port = 0
    return f"{(parts.hostname or '').lower()}:{port}"


class HostSlots:
    """At most `limit` requests at once to each origin, counted in a cache that every checker
    shares (Celery workers, bulk runs and their processes): Redis in production, memory when
    all of them are threads of one process.

    Each slot is its own key, taken with an atomic add that carries a `lease` (seconds), so
    counts cannot drift and a slot whose holder died is free again when its lease runs out.
    The cache is described by its Django configuration (a CACHES entry) and the object
    pickles without it, so that observing processes, which load no Django settings, build the
    same backend and take the same keys.
    """

    # How often a bulk check waiting for a slot that someone else holds looks again.
    POLL = 0.05  # seconds

    def __init__(self, cache_config, *, limit, lease, cache=None):
        self.cache_config = cache_config
        self.limit = limit
        self.lease = lease
        self._cache = cache
        self._building = threading.Lock()

    def __getstate__(self):
        return {**self.__dict__, "_cache": None, "_building": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _building=threading.Lock())

    @property
    def backend_module(self):
        return self.cache_config["BACKEND"].rsplit(".", 1)[0]

    @property
    def cache(self):
        with self._building:
            if self._cache is None:
                from django.utils.module_loading import import_string  # Django's, no settings

                params = dict(self.cache_config)
                backend = import_string(params.pop("BACKEND"))
                self._cache = backend(params.pop("LOCATION", ""), params)
            return self._cache

    def _add(self, key):
        """True if `key` was free and is now ours, False if taken, None if the cache cannot
        be reached (see tracker.cache)."""
        add = getattr(self.cache, "add_or_none", self.cache.add)
        return add(key, "held", timeout=self.lease)

    def _keys(self, origin, first):
        """The keys of `origin`'s slots, tried from slot `first` on."""
        return [
            f"tracker:host-slot:{origin}:{(first + index) % self.limit}"
            for index in range(self.limit)
        ]

    def take(self, origin):
        """Take a free slot of `origin` and return its key; None if all are taken or the
        cache cannot be reached (a check then waits for it rather than go unlimited)."""
        for key in self._keys(origin, 0):
            if self._add(key):
                return key
        return None

    def wait_for(self, origin, *, stopping, first=0):
        """Take a slot of `origin`, trying slot `first` first and waiting while others hold
        them all, and return its key; None once `stopping` is set, or at once if the cache
        cannot be reached: then no worker gets a slot, so none fetches, and the caller's own
        limit holds."""
        while not stopping.is_set():
            unreachable = False
            for key in self._keys(origin, first):
                added = self._add(key)
                if added:
                    return key
                unreachable = unreachable or added is None
            if unreachable:
                return None
            stopping.wait(self.POLL)
        return None

    def give_back(self, key):
        if key is not None:
            self.cache.delete(key)


def group_by_origin(watches):
    """Return the lists of `watches` that share an origin, in the order origins first appear."""
    by_origin = defaultdict(list)
    for watch in watches:
        by_origin[origin_of(watch.url)].append(watch)
    return list(by_origin.values())


def interleave_by_origin(watches):
    """Order `watches` round-robin across their origins, so that threads taking them in turn
    work on many sites at once instead of queueing behind one site's request limit."""
    rounds = itertools.zip_longest(*group_by_origin(watches))
    return [watch for round_ in rounds for watch in round_ if watch is not None]


def observe_all(watches, *, concurrency, slots, per_host=None, processes=0):
    """Yield lists of observations of `watches` as they come in, at most BATCH_SIZE each and
    each open for at most BATCH_WINDOW after its first.

    `concurrency` threads fetch, each request holding one of the host's `slots` (HostSlots,
    shared with every other checker), and at most `per_host` of them (default: the slots'
    limit) to one host at once. With `processes`, the watches are shared out between that
    many processes (see `share_out`), each running its share of the threads. Closing the
    generator early stops the fetching.
    """
    per_host = per_host or slots.limit
    if processes > 1 and len(watches) > 1:
        return _observe_in_processes(
            watches, concurrency=concurrency, slots=slots, per_host=per_host, processes=processes
        )
    return _observe_in_threads(
        watches, concurrency=concurrency, slots=slots, per_host=per_host, window=BATCH_WINDOW
    )


def _observe_in_threads(watches, *, concurrency, slots, per_host, window, turns=None):
    """Observe `watches` from `concurrency` threads; `turns` ({origin: HostShare}) narrows
    an origin's `per_host` turns to this process's share of them."""
    work = queue.SimpleQueue()
    for watch in interleave_by_origin(watches):
        work.put(watch)
    observed = queue.SimpleQueue()
    turns = turns or {}
    hosts = {}
    for group in group_by_origin(watches):
        origin = origin_of(group[0].url)
        share = turns.get(origin, HostShare(count=per_host))
        hosts[origin] = _HostTurns(slots, origin, share.count, len(group), first=share.first)
    stopping = threading.Event()

    def observe_within_limits(watch, clients):
        host = hosts[origin_of(watch.url)]
        turn = host.begin()
        try:
            turn.key = host.slot_for(turn, stopping=stopping)
            if not stopping.is_set():
                observed.put(observe(watch, clients=clients))
        finally:
            host.end(turn, stopping=stopping)

    def observer():
        try:
            with fetching.HostClients() as clients:
                while not stopping.is_set():
                    try:
                        watch = work.get_nowait()
                    except queue.Empty:
                        return
                    observe_within_limits(watch, clients)
        except BaseException as error:
            observed.put(error)  # raised again by the generator
        finally:
            observed.put(None)  # this observer is done

    threads = [threading.Thread(target=observer, daemon=True) for _ in range(max(1, concurrency))]
    for thread in threads:
        thread.start()
    try:
        yield from _batches(observed.get, running=len(threads), window=window)
    finally:
        stopping.set()
        for thread in threads:
            thread.join()
        for host in hosts.values():
            host.close()


@dataclass
class _Turn:
    index: int
    key: str | None = None  # the shared slot this turn holds, if any
    taken_at: float = 0.0


class _HostTurns:
    """One run's turns at one host: at most `count` of its threads fetch from the host at
    once, so they never poll the cache against each other, and each turn holds one of the
    host's shared slots (trying its own slot first, so a run alone takes one at once).

    A turn keeps its slot from one fetch to the next while the run has more to fetch from
    the host: a run takes each slot about once a host rather than once a fetch, two cache
    round trips saved a fetch. The slots go back once the host's last fetch has started, and
    a turn takes its slot afresh every KEEP seconds, well inside the lease.
    """

    KEEP = 30  # seconds; with a fetch's deadline (30 s) well inside the slot's lease

    def __init__(self, slots, origin, count, pending, *, first=0):
        self.slots = slots
        self.origin = origin
        self.pending = pending  # fetches of this host not started yet
        # Last in, first out; numbered from `first`, so that processes sharing a host try
        # different slots first.
        self.idle = [_Turn(index) for index in reversed(range(first, first + count))]
        self.changed = threading.Condition()

    def begin(self):
        """Wait for a free turn and return it, counting one more fetch started."""
        with self.changed:
            while not self.idle:
                self.changed.wait()
            turn = self.idle.pop()
            self.pending -= 1
            done = [] if self.pending else self._unkeep()
        self._give_back(done)
        return turn

    def slot_for(self, turn, *, stopping):
        """The key of `turn`'s slot, taken now unless the turn kept a recent one."""
        if turn.key is not None and time.monotonic() - turn.taken_at < self.KEEP:
            return turn.key
        self._give_back([turn.key])
        turn.key = None
        turn.taken_at = time.monotonic()
        return self.slots.wait_for(self.origin, stopping=stopping, first=turn.index)

    def end(self, turn, *, stopping):
        """Free `turn`; its slot stays with it while more fetches of this host wait."""
        with self.changed:
            keep = self.pending > 0 and not stopping.is_set()
            done = [] if keep else [turn.key]
            if not keep:
                turn.key = None
            self.idle.append(turn)
            self.changed.notify()
        self._give_back(done)

    def close(self):
        with self.changed:
            done = self._unkeep()
        self._give_back(done)

    def _unkeep(self):
        """Take the slots off the idle turns, for the caller to give back outside the lock."""
        keys = [turn.key for turn in self.idle]
        for turn in self.idle:
            turn.key = None
        return keys

    def _give_back(self, keys):
        for key in keys:
            self.slots.give_back(key)


def _batches(get, *, running, window):
    """Yield lists of what `get(timeout=…)` returns until `running` producers have each
    returned None; an exception returned is raised."""
    while running:
        batch = []
        item = get()
        closes_at = time.monotonic() + window
        while True:
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                batch.append(item)
            if len(batch) >= BATCH_SIZE or not running:
                break
            try:
                item = get(timeout=max(closes_at - time.monotonic(), 0))
            except queue.Empty:
                break
        if batch:
            yield batch


@dataclass(frozen=True)
class HostShare:
    """A process's share of one host's turns: `count` of them, numbered from `first`."""

    count: int
    first: int = 0


def share_out(watches, parts, *, per_host):
    """Share `watches` out between at most `parts` processes, about as many each; return a
    list of (watches, {origin: HostShare}) for each process.

    A site's pages stay in one process unless it has more than one process's worth: then
    they are dealt out between as many processes as they fill (at most `per_host`), each
    taking its own part of the site's `per_host` turns, so that one big site uses every core
    and the limit still holds across the processes, even where each counts slots apart.
    """
    parts = max(1, min(parts, len(watches)))
    fair = -(-len(watches) // parts)  # one process's worth, rounded up
    shares = [([], {}) for _ in range(parts)]
    for group in sorted(group_by_origin(watches), key=len, reverse=True):
        origin = origin_of(group[0].url)
        spread = min(parts, per_host, -(-len(group) // fair))
        each = per_host // spread
        emptiest = sorted(shares, key=lambda share: len(share[0]))[:spread]
        for index, (share, turns) in enumerate(emptiest):
            share.extend(group[index::spread])
            if spread > 1:
                turns[origin] = HostShare(count=each, first=index * each)
    return [(share, turns) for share, turns in shares if share]


# Sent by an observing process once it has sent all its observations, with its peak RSS.
@dataclass(frozen=True)
class _Done:
    peak_rss_kb: int


def _observe_share(watches, turns, concurrency, slots, per_host, allow, channel):
    """An observing process: observe `watches` in threads, sending batches on `channel`.

    `allow` is the caller's TRACKER_FETCH_ALLOW: the fork server keeps the environment it
    started with, which may be older.
    """
    os.environ[fetching.ALLOW_ENV_VAR] = allow
    fetching.new_client().close()  # the TLS context and httpx's lazy imports, before threads
    slots.cache  # noqa: B018  (the cache backend and its imports, before threads)
    batches = _observe_in_threads(
        watches,
        concurrency=concurrency,
        slots=slots,
        per_host=per_host,
        window=PROCESS_BATCH_WINDOW,
        turns=turns,
    )
    for batch in batches:
        channel.send(batch)
    channel.send(_Done(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


# The peak RSS (KB) of each observing process of the last bulk check, for benchmarks.
last_process_peaks_kb = []


def _process_context(slots):
    """How observing processes start.

    A caller running its main thread only (a command such as check_sources) forks itself:
    the processes start at once with everything already loaded, and, being its children,
    their CPU time counts as the command's. They never touch its database connection, and
    leave with os._exit, which closes nothing of the caller's.

    A caller with other threads (a server, a test with local sites) would copy those
    threads' locks mid-use, so its processes fork from a server that loaded this module and
    the slots' cache backend.
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "httpcore", "h11", slots.backend_module])
    return context


def _observe_in_processes(watches, *, concurrency, slots, per_host, processes):
    """Observe `watches` from processes, one pipe each: a process that dies (killed, or a
    parser that crashed it) takes nothing down with it, and its unreported watches come
    back as failures."""
    context = _process_context(slots)
    shares = share_out(watches, processes, per_host=per_host)
    threads_each = max(1, concurrency // len(shares))
    allow = os.environ.get(fetching.ALLOW_ENV_VAR, "")
    channels = {}
    # Forked children would otherwise copy most of the caller's memory as their collector
    # walks its objects; frozen, the collector leaves them alone (in the caller too, until
    # unfrozen once the children are started).
    gc.freeze()
    try:
        for share, turns in shares:
            receiver, sender = context.Pipe(duplex=False)
            worker = context.Process(
                target=_observe_share,
                args=(share, turns, threads_each, slots, per_host, allow, sender),
                daemon=True,
            )
            worker.start()
            sender.close()  # the worker's end: once it exits, reading this end says so
            channels[receiver] = worker
    finally:
        gc.unfreeze()
    workers = list(channels.values())
    unseen = {watch.source_id: watch for watch in watches}
    peaks = []
    try:
        for batch in _batches(
            _receiving(channels, peaks), running=len(channels), window=BATCH_WINDOW
        ):
            for observation in batch:
                unseen.pop(observation.watch.source_id, None)
            yield batch
        if unseen:
            logger.error("an observing process stopped early; %d checks failed", len(unseen))
            yield [
                Observation(watch, error="the checking process stopped unexpectedly")
                for watch in unseen.values()
            ]
    finally:
        for receiver in channels:
            receiver.close()
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()
        last_process_peaks_kb[:] = peaks


def _receiving(channels, peaks):
    """Return a `get` for `_batches` over the processes' pipes: one observation at a time,
    and None as each process finishes or dies."""
    pending = iter(())

    def get(timeout=None):
        nonlocal pending
        with contextlib.suppress(StopIteration):
            return next(pending)
        ready = multiprocessing.connection.wait(list(channels), timeout)
        if not ready:
            raise queue.Empty
        receiver = ready[0]
        try:
            item = receiver.recv()
        except (EOFError, OSError):  # the process died before it was done
            item = None
        if item is None or isinstance(item, _Done):
            del channels[receiver]
            receiver.close()
            if item is not None:
                peaks.append(item.peak_rss_kb)
            return None
        pending = iter(item)
        return next(pending)

    return get
