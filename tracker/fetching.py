"""Fetch watched web pages and feeds without letting a URL reach inside our own network.

Every URL, and every redirect it leads to, passes `check_url` first: http(s) only, no
credentials, no host that URL parsers read differently, and every address the host resolves
to must be public. The connection then goes to the address that was checked, so a second DNS
answer cannot swap in another one.
"""

import codecs
import concurrent.futures
import contextvars
import functools
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urljoin, urlsplit

import certifi
import httpcore
import httpx
from charset_normalizer import from_bytes
from django.core.exceptions import ImproperlyConfigured

USER_AGENT = "Tracker/0.1 (recommendation tracker; watches published pages and feeds)"
# Pages and feeds are text: anything bigger than this is not what a source should serve.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
# Web pages, plain text and the feed formats a source may serve.
DEFAULT_ACCEPT = (
    "text/html",
    "application/xhtml+xml",
    "text/plain",
    "application/rss+xml",
    "application/atom+xml",
    "application/xml",
    "text/xml",
    "application/rdf+xml",
    "application/feed+json",
    "application/json",
)
# Comma-separated host:port pairs fetched even though their addresses are not public.
ALLOW_ENV_VAR = "TRACKER_FETCH_ALLOW"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Iterable[str]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Browsers decode pages labelled latin-1 or ASCII as windows-1252, and authors rely on it.
_BROWSER_CODECS = {"iso8859-1": "cp1252", "ascii": "cp1252"}

_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
# Non-global ranges newer than this Python's `ipaddress` tables (RFC 9637 documentation).
_NOT_GLOBAL_TOO = (ipaddress.ip_network("3fff::/20"),)
_NAT64_NETWORK = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE_NETWORK = ipaddress.ip_network("::/96")

# Parsers disagree on whether to strip, keep or reject these, so a URL holding one is refused.
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f\s]")
# A last label like "1", "0177" or "0x7f" makes browsers read the whole host as an IPv4 number.
_NUMERIC_LABEL = re.compile(r"\d+|0x[0-9a-f]*", re.IGNORECASE)
# What a host name may hold once IDNA has turned it into ASCII.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
# The charset parameter of a Content-Type header.
_CHARSET_PARAMETER = re.compile(r"charset\s*=\s*[\"']?([\w.:+-]+)", re.IGNORECASE)
# Matches <meta charset="…"> and <meta http-equiv="content-type" content="…; charset=…"> alike.
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([\w.:+-]+)", re.IGNORECASE)
# The XML declaration, which has to open the document.
_XML_ENCODING = re.compile(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([\w.:+-]+)[\"']")


@dataclass(frozen=True)
class FetchResult:
    url: str  # final URL after redirects
    status_code: int  # 2xx, or 304
    not_modified: bool  # True for 304: no body downloaded
    etag: str
    last_modified: str
    content_type: str  # media type without parameters, lower-case
    encoding: str  # codec used to decode ("" when not_modified)
    text: str  # decoded body ("" when not_modified or binary)
    body_bytes: int  # size of the decompressed body
    # The decompressed body of a binary document (PDF, DOCX), which has no text; else b"".
    body: bytes = field(default=b"", repr=False)


class FetchError(Exception):
    """A fetch that failed; `reason` is written for the staff, `retryable` says try again later."""

    def __init__(self, reason: str, *, retryable: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class BlockedURLError(FetchError):
    """A URL the guard refuses to fetch, whatever happens on the network."""

    def __init__(self, reason: str):
        super().__init__(reason, retryable=False)


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # lower-case ASCII, without brackets
    port: int
    path: str  # path and query, never empty
    address: IPAddress | None  # set when the host is an IP literal

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def url_at(self, address: IPAddress) -> str:
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.path}"


class _Timer:
    """The time a whole fetch may take, redirects and streaming included."""

    def __init__(self, seconds: float, *, connect: float, read: float):
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.connect = connect
        self.read = read

    def left(self) -> float:
        return self.ends_at - time.monotonic()

    def check(self) -> None:
        if self.left() <= 0:
            raise self.expired()

    def expired(self) -> FetchError:
        return FetchError(f"took longer than {self.seconds:g} s", retryable=True)

    def timeout(self) -> httpx.Timeout:
        """Return per-phase timeouts, none longer than the time left."""
        self.check()
        connect, read = min(self.connect, self.left()), min(self.read, self.left())
        return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


# The _Timer of the fetch this thread is running, which every network wait obeys.
_running_timer: contextvars.ContextVar["_Timer | None"] = contextvars.ContextVar(
    "running_timer", default=None
)


@contextmanager
def _deadline(timer: _Timer) -> Iterator[None]:
    """Make every network wait of our clients in this block end by `timer`'s deadline."""
    token = _running_timer.set(timer)
    try:
        yield
    finally:
        _running_timer.reset(token)


def _within_deadline(wait: Callable[[float | None], object], timeout: float | None):
    """Return `wait(timeout)` with `timeout` cut to the running fetch's time left.

    httpx's timeouts count each read afresh, so a server sending its headers a byte at a
    time would never trip one; cutting each wait to the time left bounds the whole exchange.
    A wait cut short this way ends the fetch with the deadline's error.
    """
    timer = _running_timer.get()
    if timer is None:
        return wait(timeout)
    left = timer.left()
    if left <= 0:
        raise timer.expired()
    if timeout is not None and timeout < left:
        return wait(timeout)
    try:
        return wait(left)
    except httpcore.TimeoutException:
        raise timer.expired() from None


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads, writes and TLS handshake end by the running deadline."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _within_deadline(partial(self._stream.read, max_bytes), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _within_deadline(partial(self._stream.write, buffer), timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        start = partial(self._stream.start_tls, ssl_context, server_hostname)
        return _DeadlineStream(_within_deadline(start, timeout))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, its connections bounded by the running deadline."""

    def __init__(self, backend: httpcore.NetworkBackend):
        self._backend = backend

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        connect = partial(
            self._backend.connect_tcp,
            host,
            port,
            local_address=local_address,
            socket_options=socket_options,
        )
        return _DeadlineStream(_within_deadline(connect, timeout))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("fetches never use Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def allowed_exceptions() -> frozenset[tuple[str, int]]:
    """Return the (host, port) pairs in TRACKER_FETCH_ALLOW, which skip the address checks."""
    pairs = set()
    entries = (entry.strip() for entry in os.environ.get(ALLOW_ENV_VAR, "").split(","))
    for entry in filter(None, entries):
        host, _, port = entry.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()):
            raise ImproperlyConfigured(f"{ALLOW_ENV_VAR} entries must be host:port, not {entry!r}")
        pairs.add((host.strip("[]").lower(), int(port)))
    return frozenset(pairs)


def resolve_host(host: str) -> list[str]:
    """Return every address the system resolver gives for `host`."""
    return [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


def check_url(
    url: str, *, resolve: Resolver = resolve_host, allow: frozenset[tuple[str, int]] | None = None
) -> list[IPAddress]:
    """Return the addresses `url` may be fetched from, or raise BlockedURLError saying why not.

    `allow` holds (host, port) pairs let through whatever their addresses; it defaults to
    TRACKER_FETCH_ALLOW. The host is resolved once, here: connect to the returned addresses,
    never to the name, or a second DNS answer could point somewhere else. A name that does not
    resolve raises a retryable FetchError.
    """
    return _vet(url, resolve=resolve, allow=allowed_exceptions() if allow is None else allow)[1]


_tls_context_lock = threading.Lock()


@functools.cache
def _build_tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


def tls_context() -> ssl.SSLContext:
    """Return the one certificate-verifying TLS context all fetches share.

    Building one loads the whole CA bundle (about 35 ms of CPU), far more than a fetch
    itself costs; a context is safe to share between threads and connections. Built under a
    lock: sixteen threads starting at once would otherwise each build their own.
    """
    with _tls_context_lock:
        return _build_tls_context()


def fetch(
    url: str,
    *,
    etag: str = "",
    last_modified: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
    deadline: float = 30.0,
    max_redirects: int = 5,
    accept: Iterable[str] = DEFAULT_ACCEPT,
    resolve: Resolver = resolve_host,
    client: httpx.Client | None = None,
    clients: "HostClients | None" = None,
) -> FetchResult:
    """Download `url` for a watcher, or raise FetchError saying why not.

    1. Check the URL and each redirect hop (at most `max_redirects`) with the address guard,
       and connect to the checked address while TLS still verifies the host name.
    2. Send If-None-Match / If-Modified-Since from `etag` / `last_modified`; a 304 comes back
       as `not_modified` without a body.
    3. Refuse media types outside `accept` and bodies over `max_bytes` (decompressed) while
       streaming, and give up once `deadline` seconds have passed in all: name lookups,
       connecting, TLS, headers and body. Every network wait is cut to the time left, so a
       server dripping its headers or body cannot hold the fetch past the deadline.
    4. Decode the body with the charset it declares or, failing that, the one detected.

    `client` lets callers share a client: make it with `new_client`, or only httpx's
    per-read timeouts bound it (not the deadline); it must verify certificates. `clients`
    (HostClients) keeps connections open between one thread's fetches of the same host;
    without it each fetch closes its connections.
    Network and protocol trouble is only ever raised as FetchError.
    """
    timer = _Timer(deadline, connect=connect_timeout, read=read_timeout)
    accepted = tuple(media_type.lower() for media_type in accept)
    headers = _request_headers(
        accepted, etag=etag, last_modified=last_modified, keep_alive=clients is not None
    )
    if clients is not None:
        session = nullcontext(None)
    elif client is not None:
        session = nullcontext(client)
    else:
        session = new_client()
    with session as http, _deadline(timer):
        response, target = _open(
            clients.client_for if clients is not None else lambda host: http,
            url,
            headers=headers,
            max_redirects=max_redirects,
            resolve=resolve,
            allow=allowed_exceptions(),
            timer=timer,
        )
        try:
            with _network_errors(target.host, timer):
                return _read_result(
                    response,
                    url=target.url,
                    etag=etag,
                    last_modified=last_modified,
                    accept=accepted,
                    max_bytes=max_bytes,
                    timer=timer,
                )
        finally:
            response.close()


def new_client(*, verify: ssl.SSLContext | None = None) -> httpx.Client:
    """Return a client for `fetch` and `post_json`: it verifies certificates with
    `verify` (default: tls_context()), and its every network wait ends by their deadline."""
    # Environment proxies would resolve the name again, so our own clients ignore them.
    transport = httpx.HTTPTransport(trust_env=False, verify=verify or tls_context())
    # httpx has no public way to hand its pool a network backend: wrap the one it made.
    pool = transport._pool
    pool._network_backend = _DeadlineBackend(pool._network_backend)
    return httpx.Client(transport=transport, trust_env=False)


class HostClients:
    """One thread's HTTP clients, one per host name, so that fetches of the same host reuse
    their connection: most of a watch list is a few sites' pages.

    A client only ever talks to one host name. Its pool keys connections by the address
    connected to, which several host names may share; one client each keeps a connection
    (and its TLS session, verified for one name) from carrying another name's requests.
    Not thread-safe: give each thread its own. The least recently used client is closed
    beyond `max_hosts`.
    """

    def __init__(self, *, max_hosts: int = 32):
        self.max_hosts = max_hosts
        self._clients: OrderedDict[str, httpx.Client] = OrderedDict()

    def client_for(self, host: str) -> httpx.Client:
        client = self._clients.pop(host, None) or new_client()
        self._clients[host] = client
        while len(self._clients) > self.max_hosts:
            self._clients.popitem(last=False)[1].close()
        return client

    def close(self) -> None:
        while self._clients:
            self._clients.popitem()[1].close()

    def __enter__(self) -> "HostClients":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def post_json(
    url: str,
    body: bytes,
    *,
    headers: dict[str, str],
    connect_timeout: float = 5.0,
    read_timeout: float = 10.0,
    deadline: float = 15.0,
    resolve: Resolver = resolve_host,
) -> int:
    """POST a JSON `body` to `url` through the same address guard as `fetch`; return the
    2xx status, or raise FetchError (retryable for network trouble, 429 and 5xx).

    Redirects are not followed: a receiver that moves must be registered again. The whole
    exchange ends within `deadline` seconds, as a fetch does.
    """
    timer = _Timer(deadline, connect=connect_timeout, read=read_timeout)
    target, addresses = _vet(url, resolve=resolve, allow=allowed_exceptions(), timeout=timer.left())
    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        "Connection": "close",
        **headers,
    }
    with new_client() as http, _deadline(timer):
        with _network_errors(target.host, timer):
            response = _send(
                http, target, addresses, headers=headers, timer=timer, method="POST", content=body
            )
        response.close()  # the receiver's answer is not read: only its status matters
    if response.status_code in _REDIRECT_STATUSES:
        raise FetchError(f"HTTP {response.status_code}: redirects are not followed")
    _raise_for_status(response)
    return response.status_code


def _open(
    client_for: Callable[[str], httpx.Client],
    url: str,
    *,
    headers: dict[str, str],
    max_redirects: int,
    resolve: Resolver,
    allow: frozenset[tuple[str, int]],
    timer: _Timer,
) -> tuple[httpx.Response, _Target]:
    """Return the streaming response that ends `url`'s redirects, and where it came from."""
    visited = {url}
    for hop in range(max_redirects + 1):
        try:
            target, addresses = _vet(url, resolve=resolve, allow=allow, timeout=timer.left())
        except BlockedURLError as exc:
            if hop == 0:
                raise
            raise BlockedURLError(f"redirected to {url}, which is refused: {exc.reason}") from exc
        with _network_errors(target.host, timer):
            response = _send(
                client_for(target.host), target, addresses, headers=headers, timer=timer
            )
        if response.status_code not in _REDIRECT_STATUSES:
            return response, target
        response.close()
        url = _redirect_url(response, current=url, visited=visited)
    raise FetchError(f"too many redirects (more than {max_redirects})", retryable=False)


def _vet(
    url: str,
    *,
    resolve: Resolver,
    allow: frozenset[tuple[str, int]],
    timeout: float | None = None,
) -> tuple[_Target, list[IPAddress]]:
    target = _parse_target(url)
    addresses = [target.address] if target.address else _resolve(target.host, resolve, timeout)
    if (target.host, target.port) in allow:
        return target, addresses
    for address in addresses:
        problem = _address_problem(address)
        if problem and target.address:
            raise BlockedURLError(f"{address} {problem}")
        if problem:
            raise BlockedURLError(
                f"{target.host} resolves to {address}, which {problem}; "
                "a host is refused when any of its records is not public"
            )
    return target, addresses


def _parse_target(url: str) -> _Target:
    """Split `url`, refusing anything that URL parsers could read in different ways."""
    if _UNSAFE_CHARACTERS.search(url):
        raise BlockedURLError("the URL contains whitespace or control characters")
    if "\\" in url:
        raise BlockedURLError("the URL contains a backslash, which URL parsers read differently")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedURLError(f"not a valid URL ({exc})") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise BlockedURLError(f"only http and https URLs are fetched, not {parts.scheme or url!r}")
    if "@" in parts.netloc:
        raise BlockedURLError("the URL contains credentials (user:password@)")
    if not parts.hostname:
        raise BlockedURLError("the URL has no host")
    if parts.netloc.startswith("["):
        host = parts.hostname
        try:
            address = ipaddress.ip_address(host)
        except ValueError:  # urlsplit lets through forms such as IPvFuture ([v1.x])
            raise BlockedURLError(f"[{host}] is not an IP address literal") from None
    else:
        host = _ascii_host(parts.hostname)
        address = _ipv4_literal(host)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    port = _DEFAULT_PORTS[parts.scheme] if port is None else port
    return _Target(url, parts.scheme, host, port, path, address)


def _ascii_host(host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise BlockedURLError(f"{host} is not a valid host name") from None
    if not _HOST_NAME.fullmatch(ascii_host):
        raise BlockedURLError(f"{host} is not a valid host name")
    return ascii_host


def _ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """Return the address of a dotted-quad host, None for a name; refuse other numeric forms.

    Browsers read "2130706433", "0x7f.1", "127.1" and "0177.0.0.1" as 127.0.0.1, other
    parsers as names or errors, so only the canonical four decimal numbers are accepted.
    """
    if not _NUMERIC_LABEL.fullmatch(host.removesuffix(".").rpartition(".")[2]):
        return None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        raise BlockedURLError(
            f"{host} is a numeric host that URL parsers read differently; "
            "write the address as four decimal numbers"
        ) from None


# Name lookups that may be abandoned when they outlast a fetch's deadline.
_RESOLVER_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")


def _resolve(host: str, resolve: Resolver, timeout: float | None = None) -> list[IPAddress]:
    """Resolve `host`, giving up after `timeout` seconds: the system resolver has no timeout
    of its own, so the lookup runs on a small pool and a slow one is abandoned to it."""
    try:
        if timeout is None:
            records = resolve(host)
        else:
            records = _RESOLVER_POOL.submit(resolve, host).result(timeout=max(timeout, 0))
        found = [ipaddress.ip_address(address) for address in records]
    except concurrent.futures.TimeoutError:
        raise FetchError(f"looking up {host} took too long", retryable=True) from None
    except OSError as exc:
        raise FetchError(f"could not resolve {host} ({exc})", retryable=True) from exc
    if not found:
        raise FetchError(f"{host} resolves to no address", retryable=True)
    return list(dict.fromkeys(found))


def _address_problem(address: IPAddress) -> str | None:
    """Return why `address` may not be fetched ("is a loopback address"), or None if public.

    An IPv6 address that carries IPv4 (mapped, compatible, 6to4, NAT64, Teredo) is judged by
    the IPv4 addresses it carries.
    """
    carried = _carried_ipv4(address) if address.version == 6 else ()
    for inner in carried:
        if problem := _address_problem(inner):
            return f"carries {inner}, which {problem}"
    if carried:
        return None
    if address.is_unspecified:
        return "is an unspecified address"
    if address.is_loopback:
        return "is a loopback address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_multicast:
        return "is a multicast address"
    if any(address in network for network in _PRIVATE_NETWORKS):
        return "is a private address"
    if address in _SHARED_NETWORK:
        return "is a carrier-grade NAT address"
    if address.is_reserved:
        return "is a reserved address"
    if not address.is_global or any(address in network for network in _NOT_GLOBAL_TOO):
        return "is not a public address"
    return None


def _carried_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    if address.ipv4_mapped:
        return (address.ipv4_mapped,)
    if address.sixtofour:
        return (address.sixtofour,)
    if address.teredo:
        return address.teredo
    # :: and ::1 sit in the IPv4-compatible range but are IPv6's own unspecified and loopback.
    if address in _NAT64_NETWORK or (address in _IPV4_COMPATIBLE_NETWORK and int(address) > 1):
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return ()


def _request_headers(
    accept: tuple[str, ...], *, etag: str, last_modified: str, keep_alive: bool = False
) -> dict[str, str]:
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": ", ".join(accept),
        "Accept-Encoding": "gzip, deflate",
    }
    if not keep_alive:
        # A client's pool keys connections by IP address: closing them keeps a TLS session
        # verified for one host name from carrying requests for another (see HostClients).
        headers["Connection"] = "close"
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def _send(
    http: httpx.Client,
    target: _Target,
    addresses: list[IPAddress],
    *,
    headers: dict[str, str],
    timer: _Timer,
    method: str = "GET",
    content: bytes | None = None,
) -> httpx.Response:
    """Send the request to each checked address in turn until one takes the connection."""
    send = partial(
        _send_to, http, target, headers=headers, timer=timer, method=method, content=content
    )
    for address in addresses[:-1]:
        with suppress(httpx.ConnectError, httpx.ConnectTimeout):
            return send(address)
    return send(addresses[-1])


def _send_to(
    http: httpx.Client,
    target: _Target,
    address: IPAddress,
    *,
    headers: dict[str, str],
    timer: _Timer,
    method: str,
    content: bytes | None,
) -> httpx.Response:
    """Connect to `address` itself, so httpx never resolves the host name again.

    The Host header and TLS (SNI and the certificate check) still use the host name.
    """
    request = http.build_request(
        method,
        target.url_at(address),
        headers={**headers, "Host": target.host_header},
        content=content,
        timeout=timer.timeout(),
        extensions={"sni_hostname": target.host},
    )
    return http.send(request, stream=True, follow_redirects=False)


def _redirect_url(response: httpx.Response, *, current: str, visited: set[str]) -> str:
    location = response.headers.get("location", "").strip()
    if not location:
        raise FetchError(
            f"HTTP {response.status_code} redirect without a Location header", retryable=False
        )
    url = urljoin(current, location)
    if url in visited:
        raise FetchError(f"redirect loop: {url} was already visited", retryable=False)
    visited.add(url)
    return url


def _read_result(
    response: httpx.Response,
    *,
    url: str,
    etag: str,
    last_modified: str,
    accept: tuple[str, ...],
    max_bytes: int,
    timer: _Timer,
) -> FetchResult:
    media_type, charset = _parse_content_type(response.headers.get("content-type", ""))
    if response.status_code == 304:
        # Read its (empty) end, or the pool drops the connection instead of reusing it.
        _read_body(response, max_bytes=max_bytes, timer=timer)
        return FetchResult(
            url=url,
            status_code=304,
            not_modified=True,
            etag=response.headers.get("etag", etag),
            last_modified=response.headers.get("last-modified", last_modified),
            content_type=media_type,
            encoding="",
            text="",
            body_bytes=0,
        )
    _raise_for_status(response)
    if not media_type:
        raise FetchError("the response has no Content-Type", retryable=False)
    if media_type not in accept:
        raise FetchError(f"unexpected content type {media_type}", retryable=False)
    body = _read_body(response, max_bytes=max_bytes, timer=timer)
    if _is_binary(media_type):  # charset detection on megabytes of PDF would only waste time
        text, encoding = "", ""
    else:
        text, encoding = _decode(body, media_type=media_type, header_charset=charset)
    return FetchResult(
        url=url,
        status_code=response.status_code,
        not_modified=False,
        etag=response.headers.get("etag", ""),
        last_modified=response.headers.get("last-modified", ""),
        content_type=media_type,
        encoding=encoding,
        text=text,
        body_bytes=len(body),
        body=b"" if text else body,  # watched pages keep only their text, as before
    )


def _is_binary(media_type: str) -> bool:
    return media_type in {"application/pdf"} or media_type.startswith(
        "application/vnd.openxmlformats-officedocument."
    )


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    retryable = status == 429 or status >= 500
    raise FetchError(f"HTTP {status} {response.reason_phrase}".strip(), retryable=retryable)


def _parse_content_type(value: str) -> tuple[str, str]:
    """Return the media type and charset parameter of a Content-Type header."""
    match = _CHARSET_PARAMETER.search(value)
    return value.partition(";")[0].strip().lower(), match.group(1) if match else ""


def _read_body(response: httpx.Response, *, max_bytes: int, timer: _Timer) -> bytes:
    """Stream the body, inflating it ourselves so that no chunk grows past `max_bytes`.

    httpx's own decoding inflates each network chunk whole: 64 KB of a gzip bomb would
    become 64 MB before anything could count it.
    """
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    inflater = _inflater(response.headers.get("content-encoding", ""))
    body = bytearray()
    for chunk in response.iter_raw():
        timer.check()
        if inflater:
            try:
                chunk = inflater.decompress(chunk, max_bytes + 1 - len(body))
            except zlib.error as exc:
                raise FetchError(
                    f"the compressed body is corrupt ({exc})", retryable=False
                ) from exc
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    if inflater and not inflater.eof:
        raise FetchError("the compressed body ended early", retryable=True)
    return bytes(body)


def _inflater(content_encoding: str):
    """Return a zlib decompressor for a gzip or deflate body, None for an uncompressed one."""
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # 32: accept gzip and zlib headers
    raise FetchError(f"unsupported Content-Encoding {coding}", retryable=False)


def _too_large(max_bytes: int) -> FetchError:
    size = f"{max_bytes / 2**20:.3g} MB" if max_bytes >= 2**20 else f"{max_bytes} bytes"
    return FetchError(f"response larger than {size}", retryable=False)


def _decode(body: bytes, *, media_type: str, header_charset: str) -> tuple[str, str]:
    """Return the body as text and the codec used.

    Choose the charset as browsers do: a byte-order mark, the Content-Type charset, the
    document's own declaration, then detection. Undecodable bytes become U+FFFD, so a wrong
    declaration garbles a few characters instead of failing.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, errors="replace"), codec
    codec = _codec(header_charset) or _codec(_declared_charset(body, media_type)) or _detect(body)
    return body.decode(codec, errors="replace"), codec


# Python codecs that decode bytes to text but are no web charset: a page naming one lies.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape", "rot_13"}
)


def _codec(label: str) -> str | None:
    """Return Python's name for a charset label, None if unknown or not a text encoding."""
    if not label:
        return None
    try:
        name = codecs.lookup(label).name
        # Refuses bytes-to-bytes codecs such as base64 (an empty probe would skip the check).
        b"a".decode(name, errors="replace")
    except (LookupError, UnicodeError):
        return None
    if name in _NOT_CHARSETS:
        return None
    return _BROWSER_CODECS.get(name, name)


def _declared_charset(body: bytes, media_type: str) -> str:
    head = body[:1024]
    match = _XML_ENCODING.match(head)
    if not match and media_type in _HTML_TYPES:
        match = _META_CHARSET.search(head)
    if not match:
        return ""
    label = match.group(1).decode("ascii")
    # A declaration readable as ASCII cannot sit in a UTF-16 document, whatever it says.
    return "utf-8" if label.lower().startswith("utf-16") else label


def _detect(body: bytes) -> str:
    """Return "utf-8" for valid UTF-8, else windows-1252 unless charset-normalizer rules it out.

    Browsers in Western locales read undeclared legacy pages as windows-1252, while
    charset-normalizer ranks near-identical codecs by chance on short texts (cp1257 for
    French, cp1250 for English with curly quotes). Its best guess serves the other scripts.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        if from_bytes(body, cp_isolation=["cp1252"]).best():
            return "cp1252"
        guess = from_bytes(body).best()
        return (guess and _codec(guess.encoding)) or "cp1252"
    return "utf-8"


@contextmanager
def _network_errors(host: str, timer: _Timer) -> Iterator[None]:
    """Raise httpx's network and protocol errors as FetchError, naming `host`."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise _network_error(exc, host=host, timer=timer) from exc


def _network_error(exc: httpx.HTTPError, *, host: str, timer: _Timer) -> FetchError:
    if timer.left() <= 0:
        return timer.expired()
    if isinstance(exc, httpx.ConnectTimeout):
        reason = f"timed out connecting to {host}"
    elif isinstance(exc, httpx.TimeoutException):
        reason = f"timed out waiting for {host}"
    elif isinstance(exc, httpx.ConnectError):
        reason = f"could not connect to {host} ({exc})"
    else:
        reason = f"network error talking to {host} ({exc})"
    return FetchError(reason, retryable=True)
