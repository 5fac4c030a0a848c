"""The guarded HTTP client, against real local servers on 127.0.0.1 only.

Address rules are checked with fake resolvers and never connect anywhere.
"""

import gzip
import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
from contextlib import suppress

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tracker.fetching import (
    ALLOW_ENV_VAR,
    DEFAULT_MAX_BYTES,
    USER_AGENT,
    BlockedURLError,
    FetchError,
    HostClients,
    allowed_exceptions,
    check_url,
    fetch,
    new_client,
    post_json,
)

TEST_HOST = "tracker-test.invalid"
# Public addresses that fake resolvers hand out; no test ever connects to them.
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700::1111"


def no_dns(host):
    raise AssertionError(f"{host} should not have been resolved")


def resolver(*records):
    """Return a fake resolver giving `records` for TEST_HOST and nothing else."""
    calls = []

    def resolve(host):
        assert host == TEST_HOST, f"unexpected lookup of {host}"
        calls.append(host)
        return list(records)

    resolve.calls = calls
    return resolve


@pytest.fixture(autouse=True)
def no_allowed_exceptions(monkeypatch):
    monkeypatch.delenv(ALLOW_ENV_VAR, raising=False)


@pytest.fixture(autouse=True)
def no_dns_anywhere(monkeypatch):
    """Fail every name lookup: tests resolve through fakes, and fetch must connect by address."""
    system_lookup = socket.getaddrinfo

    def numeric_only(host, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"no DNS in tests ({host})") from None
        return system_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)


@pytest.fixture(scope="module")
def local_server():
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def httpserver(local_server, monkeypatch):
    """pytest-httpserver on 127.0.0.1 (its own fixture binds "localhost"), let through the guard."""
    local_server.clear()
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{local_server.port}")
    return local_server


@pytest.fixture
def other_server():
    """A second loopback server that the guard does not let through."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def raw_server():
    """Start one-connection TCP servers on 127.0.0.1; `start(handle)` returns the port."""
    stop = threading.Event()
    started = []

    def serve(listener, handle):
        with listener:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                with suppress(OSError):  # the client hung up, as the tests intend
                    handle(connection, stop)

    def start(handle):
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(5)
        thread = threading.Thread(target=serve, args=(listener, handle), daemon=True)
        thread.start()
        started.append(thread)
        return listener.getsockname()[1]

    yield start
    stop.set()
    for thread in started:
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for TEST_HOST, made with the openssl command."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert),
            "-subj", f"/CN={TEST_HOST}", "-addext", f"subjectAltName=DNS:{TEST_HOST}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_listener(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_server(tls_listener):
    tls_listener.clear()
    return tls_listener


@pytest.fixture
def trusting_client(certificate):
    """A fetch client that trusts the test certificate, and still checks host names."""
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with new_client(verify=context) as client:
        yield client


def url(server, path="/"):
    return f"http://127.0.0.1:{server.port}{path}"


def refusal(call):
    with pytest.raises(FetchError) as caught:
        call()
    return caught.value


# The address guard, without any connection.

REFUSED_URLS = [
    ("ftp://example.org/", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http://user:secret@example.org/", "credentials"),
    ("http://example.org@127.0.0.1/", "credentials"),
    ("http://example.org\\@127.0.0.1/", "backslash"),
    ("http:\\\\127.0.0.1\\", "backslash"),
    ("http://exa mple.org/", "whitespace or control characters"),
    ("http://example.org/\n", "whitespace or control characters"),
    ("http://example.org\t/", "whitespace or control characters"),
    ("http:///path", "no host"),
    ("http://:80/", "no host"),
    ("http://2130706433/", "2130706433 is a numeric host"),
    ("http://0/", "0 is a numeric host"),
    ("http://0x7f.1/", "0x7f.1 is a numeric host"),
    ("http://127.1/", "127.1 is a numeric host"),
    ("http://0177.0.0.1/", "0177.0.0.1 is a numeric host"),
    ("http://127.0.0.1./", "127.0.0.1. is a numeric host"),
    ("http://%31%32%37.0.0.1/", "is not a valid host name"),
    ("http://[::1/", "not a valid URL"),
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    # Fullwidth digits and dots, which IDNA folds into 127.0.0.1.
    ("http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/", "127.0.0.1 is a loopback"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("http://10.1.2.3/", "10.1.2.3 is a private address"),
    ("http://172.16.5.4/", "172.16.5.4 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    ("http://169.254.169.254/", "169.254.169.254 is a link-local address"),
    ("http://100.64.0.1/", "100.64.0.1 is a carrier-grade NAT address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://192.0.2.1/", "192.0.2.1 is not a public address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://[fd12::1]/", "fd12::1 is a private address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("http://[::ffff:127.0.0.1]/", "carries 127.0.0.1, which is a loopback address"),
    ("http://[::7f00:1]/", "carries 127.0.0.1, which is a loopback address"),
    ("http://[2002:a00:1::]/", "carries 10.0.0.1, which is a private address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "carries 169.254.169.254, which is a link-local address"),
    # Teredo: server 8.8.8.8, client 127.0.0.1 stored inverted as 80ff:fffe.
    ("http://[2001:0:808:808::80ff:fffe]/", "carries 127.0.0.1, which is a loopback address"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_check_url_refuses_with_a_reason(url, reason):
    with pytest.raises(BlockedURLError) as caught:
        check_url(url, resolve=no_dns)
    assert reason in caught.value.reason
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (["127.0.0.1"], "resolves to 127.0.0.1, which is a loopback address"),
        (["10.0.0.7"], "resolves to 10.0.0.7, which is a private address"),
        (["::ffff:192.168.0.1"], "carries 192.168.0.1, which is a private address"),
        ([PUBLIC_V4, "127.0.0.1"], "any of its records"),
        ([PUBLIC_V6, "fe80::1"], "fe80::1, which is a link-local address"),
    ],
)
def test_check_url_refuses_a_host_with_any_non_public_record(records, reason):
    with pytest.raises(BlockedURLError) as caught:
        check_url(f"http://{TEST_HOST}/", resolve=resolver(*records))
    assert reason in caught.value.reason


def test_check_url_returns_every_public_address_once():
    addresses = check_url(
        f"https://{TEST_HOST}/", resolve=resolver(PUBLIC_V4, PUBLIC_V6, PUBLIC_V4)
    )
    assert [str(address) for address in addresses] == [PUBLIC_V4, PUBLIC_V6]


def test_check_url_accepts_public_literals_without_dns():
    assert [str(a) for a in check_url(f"http://{PUBLIC_V4}:8080/x", resolve=no_dns)] == [PUBLIC_V4]
    assert [str(a) for a in check_url(f"https://[{PUBLIC_V6}]/", resolve=no_dns)] == [PUBLIC_V6]


def test_a_host_that_does_not_resolve_is_a_retryable_error():
    def broken(host):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    error = refusal(lambda: check_url(f"http://{TEST_HOST}/", resolve=broken))
    assert not isinstance(error, BlockedURLError)
    assert error.retryable is True
    assert error.reason.startswith(f"could not resolve {TEST_HOST}")

    empty = refusal(lambda: check_url(f"http://{TEST_HOST}/", resolve=resolver()))
    assert (empty.reason, empty.retryable) == (f"{TEST_HOST} resolves to no address", True)


def test_allowed_exceptions_are_read_at_call_time(monkeypatch):
    assert allowed_exceptions() == frozenset()
    monkeypatch.setenv(ALLOW_ENV_VAR, "127.0.0.1:8766, Localhost:9000,[::1]:8000,")
    assert allowed_exceptions() == {("127.0.0.1", 8766), ("localhost", 9000), ("::1", 8000)}


def test_allowed_exceptions_refuse_an_entry_without_a_port(monkeypatch):
    monkeypatch.setenv(ALLOW_ENV_VAR, "127.0.0.1")
    with pytest.raises(ImproperlyConfigured, match="host:port"):
        allowed_exceptions()


def test_an_allowed_pair_lets_exactly_that_host_and_port_through(monkeypatch):
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:8766,{TEST_HOST}:80")
    assert [str(a) for a in check_url("http://127.0.0.1:8766/", resolve=no_dns)] == ["127.0.0.1"]
    assert [str(a) for a in check_url(f"http://{TEST_HOST}/", resolve=resolver("10.0.0.1"))] == [
        "10.0.0.1"
    ]
    with pytest.raises(BlockedURLError, match="loopback"):
        check_url("http://127.0.0.1:8767/", resolve=no_dns)
    with pytest.raises(BlockedURLError, match="private"):
        check_url(f"https://{TEST_HOST}/", resolve=resolver("10.0.0.1"))
    with pytest.raises(BlockedURLError, match="credentials"):
        check_url("http://user@127.0.0.1:8766/", resolve=no_dns)


def test_a_refused_url_is_never_requested():
    requests = []
    transport = httpx.MockTransport(lambda request: requests.append(request) or httpx.Response(200))
    with httpx.Client(transport=transport, trust_env=False) as client:
        with pytest.raises(BlockedURLError, match="private"):
            fetch(f"http://{TEST_HOST}/", resolve=resolver("192.168.1.10"), client=client)
        with pytest.raises(BlockedURLError, match="numeric host"):
            fetch("http://0x7f.1/", resolve=no_dns, client=client)
    assert requests == []


def test_each_checked_address_is_tried_under_the_host_name():
    """Requests go to the checked addresses in turn, never to the name."""
    seen = []

    def handle(request):
        seen.append((request.url.host, request.headers["Host"], request.extensions["sni_hostname"]))
        if request.url.host == PUBLIC_V4:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(
            200, headers={"Content-Type": "text/plain"}, stream=httpx.ByteStream(b"second")
        )

    with httpx.Client(transport=httpx.MockTransport(handle), trust_env=False) as client:
        result = fetch(
            f"https://{TEST_HOST}/a", resolve=resolver(PUBLIC_V4, PUBLIC_V6), client=client
        )
    assert (result.url, result.text) == (f"https://{TEST_HOST}/a", "second")
    assert seen == [(PUBLIC_V4, TEST_HOST, TEST_HOST), (PUBLIC_V6, TEST_HOST, TEST_HOST)]


# Fetching from the local server.


def test_a_page_that_changes_between_two_fetches(httpserver):
    handler = httpserver.expect_oneshot_request("/page")
    handler.respond_with_data("<p>First version</p>", content_type="text/html")
    first = fetch(url(httpserver, "/page"))
    httpserver.expect_oneshot_request("/page").respond_with_data(
        "<p>Second version</p>", content_type="text/html; charset=utf-8"
    )
    second = fetch(url(httpserver, "/page"))
    assert (first.text, second.text) == ("<p>First version</p>", "<p>Second version</p>")
    assert second.status_code == 200
    assert second.not_modified is False
    assert (second.content_type, second.encoding, second.body_bytes) == ("text/html", "utf-8", 21)


def test_an_unchanged_page_is_not_downloaded_again_with_its_etag(httpserver):
    httpserver.expect_request("/feed", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304, headers={"ETag": '"v1"'}
    )
    result = fetch(url(httpserver, "/feed"), etag='"v1"')
    assert result.not_modified is True
    assert (result.status_code, result.etag, result.text, result.encoding) == (304, '"v1"', "", "")
    assert httpserver.log[0][0].headers["If-None-Match"] == '"v1"'


def test_an_unchanged_page_is_not_downloaded_again_since_last_modified(httpserver):
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    httpserver.expect_request("/feed", headers={"If-Modified-Since": stamp}).respond_with_data(
        "", status=304
    )
    result = fetch(url(httpserver, "/feed"), last_modified=stamp)
    assert (result.not_modified, result.last_modified, result.body_bytes) == (True, stamp, 0)
    assert httpserver.log[0][0].headers["If-Modified-Since"] == stamp
    assert "If-None-Match" not in httpserver.log[0][0].headers


def test_validators_come_back_for_the_next_conditional_get(httpserver):
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    httpserver.expect_request("/").respond_with_data(
        "hello", content_type="text/plain", headers={"ETag": 'W/"abc"', "Last-Modified": stamp}
    )
    result = fetch(url(httpserver))
    assert (result.etag, result.last_modified) == ('W/"abc"', stamp)
    assert "If-None-Match" not in httpserver.log[0][0].headers


def test_requests_name_tracker_as_user_agent(httpserver):
    httpserver.expect_request("/").respond_with_data("ok", content_type="text/plain")
    fetch(url(httpserver))
    assert httpserver.log[0][0].headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("Tracker/")


def test_a_redirect_to_an_allowed_path_is_followed(httpserver):
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data("<p>moved</p>", content_type="text/html")
    result = fetch(url(httpserver, "/old"))
    assert (result.url, result.text) == (url(httpserver, "/new"), "<p>moved</p>")


def redirect_chain(server, hops):
    for hop in range(hops):
        server.expect_request(f"/r{hop}").respond_with_data(
            "", status=302, headers={"Location": f"/r{hop + 1}"}
        )
    server.expect_request(f"/r{hops}").respond_with_data("end", content_type="text/plain")


def test_five_redirects_are_followed(httpserver):
    redirect_chain(httpserver, 5)
    assert fetch(url(httpserver, "/r0")).text == "end"


def test_six_redirects_are_too_many(httpserver):
    redirect_chain(httpserver, 6)
    error = refusal(lambda: fetch(url(httpserver, "/r0")))
    assert error.reason == "too many redirects (more than 5)"
    assert len(httpserver.log) == 6


def test_a_redirect_loop_is_refused(httpserver):
    httpserver.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=307, headers={"Location": "/a"})
    error = refusal(lambda: fetch(url(httpserver, "/a")))
    assert error.reason == f"redirect loop: {url(httpserver, '/a')} was already visited"
    assert error.retryable is False


def test_a_redirect_without_location_is_refused(httpserver):
    httpserver.expect_request("/").respond_with_data("", status=302)
    error = refusal(lambda: fetch(url(httpserver)))
    assert error.reason == "HTTP 302 redirect without a Location header"


def test_a_redirect_to_another_loopback_port_is_refused(httpserver, other_server):
    other_server.expect_request("/").respond_with_data("internal", content_type="text/plain")
    httpserver.expect_request("/").respond_with_data(
        "", status=302, headers={"Location": url(other_server)}
    )
    with pytest.raises(BlockedURLError) as caught:
        fetch(url(httpserver))
    assert caught.value.reason == (
        f"redirected to {url(other_server)}, which is refused: 127.0.0.1 is a loopback address"
    )
    assert other_server.log == []


def test_a_redirect_to_a_private_host_is_refused(httpserver):
    httpserver.expect_request("/").respond_with_data(
        "", status=301, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    with pytest.raises(BlockedURLError, match=r"169\.254\.169\.254 is a link-local address"):
        fetch(url(httpserver))


def test_the_connection_goes_to_the_checked_address_under_the_host_name(httpserver, monkeypatch):
    """No DNS works in these tests, so only the checked address can have been reached."""
    monkeypatch.setenv(ALLOW_ENV_VAR, f"{TEST_HOST}:{httpserver.port}")
    httpserver.expect_request("/page").respond_with_data("pinned", content_type="text/plain")
    resolve = resolver("127.0.0.1")

    result = fetch(f"http://{TEST_HOST}:{httpserver.port}/page", resolve=resolve)

    assert result.text == "pinned"
    assert result.url == f"http://{TEST_HOST}:{httpserver.port}/page"
    assert httpserver.log[0][0].headers["Host"] == f"{TEST_HOST}:{httpserver.port}"
    assert resolve.calls == [TEST_HOST]


def test_an_oversized_body_with_content_length_is_refused(httpserver):
    httpserver.expect_request("/").respond_with_data("x" * 2001, content_type="text/plain")
    error = refusal(lambda: fetch(url(httpserver), max_bytes=2000))
    assert (error.reason, error.retryable) == ("response larger than 2000 bytes", False)


def test_a_declared_oversized_body_is_refused_before_reading_it(raw_server, monkeypatch):
    def announce_and_stall(connection, stop):
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000000000\r\n\r\n<p>"
        )
        stop.wait()

    port = raw_server(announce_and_stall)
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{port}")
    error = refusal(lambda: fetch(f"http://127.0.0.1:{port}/", read_timeout=2.0))
    assert error.reason == "response larger than 5 MB"


def test_an_oversized_streamed_body_without_content_length_is_refused(httpserver):
    def stream():
        for _ in range(200):
            yield b"x" * 65536

    httpserver.expect_request("/").respond_with_handler(
        lambda request: Response(stream(), content_type="text/plain")
    )
    error = refusal(lambda: fetch(url(httpserver)))
    assert error.reason == "response larger than 5 MB"
    assert "Content-Length" not in httpserver.log[0][1].headers


def test_a_gzip_body_is_decompressed(httpserver):
    page = "<p>Réponse compressée</p>".encode()
    httpserver.expect_request("/").respond_with_data(
        gzip.compress(page), content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    result = fetch(url(httpserver))
    assert (result.text, result.body_bytes) == ("<p>Réponse compressée</p>", len(page))
    assert "gzip" in httpserver.log[0][0].headers["Accept-Encoding"]


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"not gzip at all", "gzip", "the compressed body is corrupt"),
        (gzip.compress(b"<p>cut short</p>" * 50)[:-12], "gzip", "the compressed body ended early"),
        (b"<p>hi</p>", "br", "unsupported Content-Encoding br"),
    ],
)
def test_a_body_that_cannot_be_decompressed_is_refused(httpserver, body, encoding, reason):
    httpserver.expect_request("/").respond_with_data(
        body, content_type="text/html", headers={"Content-Encoding": encoding}
    )
    assert reason in refusal(lambda: fetch(url(httpserver))).reason


@pytest.fixture(scope="module")
def gzip_bomb():
    """50 MB of zeros that travel as about 50 KB."""
    return gzip.compress(bytes(50 * 1024 * 1024))


def test_a_gzip_bomb_is_refused_without_inflating_it(httpserver, gzip_bomb):
    httpserver.expect_request("/").respond_with_data(
        gzip_bomb, content_type="text/html", headers={"Content-Encoding": "gzip"}
    )
    tracemalloc.start()
    try:
        error = refusal(lambda: fetch(url(httpserver)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.reason == "response larger than 5 MB"
    assert peak < 4 * DEFAULT_MAX_BYTES  # inflating it all would take ten times the cap


def test_a_slow_drip_is_cut_off_at_the_deadline(raw_server, monkeypatch):
    def drip(connection, stop):
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 999\r\n\r\n"
        )
        while not stop.wait(0.05):
            connection.sendall(b"x")

    port = raw_server(drip)
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{port}")
    error = refusal(lambda: fetch(f"http://127.0.0.1:{port}/", deadline=1.0))
    assert (error.reason, error.retryable) == ("took longer than 1 s", True)


def drip_headers(connection, stop):
    """Send a status line, then one header line a second. Stop after 8 s, so that a client
    without a total deadline fails the test instead of hanging the suite."""
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    for number in range(8):
        if stop.wait(1):
            return
        connection.sendall(f"X-Drip-{number}: {number}\r\n".encode())


@pytest.mark.parametrize("call", ["fetch", "pooled fetch", "post_json"])
def test_headers_dripped_a_line_a_second_are_cut_off_at_the_deadline(raw_server, monkeypatch, call):
    port = raw_server(drip_headers)
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    with HostClients() as clients:
        send = {
            "fetch": lambda: fetch(url, deadline=2),
            "pooled fetch": lambda: fetch(url, deadline=2, clients=clients),
            "post_json": lambda: post_json(url, b"{}", headers={}, deadline=2),
        }[call]
        error = refusal(send)
    assert time.monotonic() - started < 4
    assert (error.reason, error.retryable) == ("took longer than 2 s", True)


def test_a_silent_server_times_out(raw_server, monkeypatch):
    port = raw_server(lambda connection, stop: stop.wait())
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{port}")
    error = refusal(lambda: fetch(f"http://127.0.0.1:{port}/", read_timeout=0.2))
    assert (error.reason, error.retryable) == ("timed out waiting for 127.0.0.1", True)


def test_a_refused_connection_is_a_retryable_error(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{port}")
    error = refusal(lambda: fetch(f"http://127.0.0.1:{port}/"))
    assert error.retryable is True
    assert error.reason.startswith("could not connect to 127.0.0.1")


def test_a_garbled_response_is_a_retryable_error(raw_server, monkeypatch):
    port = raw_server(lambda connection, stop: connection.sendall(b"SPAM SPAM SPAM\r\n\r\n"))
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{port}")
    error = refusal(lambda: fetch(f"http://127.0.0.1:{port}/"))
    assert error.retryable is True
    assert error.reason.startswith("network error talking to 127.0.0.1")


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (404, "HTTP 404 NOT FOUND", False),
        (410, "HTTP 410 GONE", False),
        (403, "HTTP 403 FORBIDDEN", False),
        (429, "HTTP 429 TOO MANY REQUESTS", True),
        (500, "HTTP 500 INTERNAL SERVER ERROR", True),
        (503, "HTTP 503 SERVICE UNAVAILABLE", True),
    ],
)
def test_error_statuses_say_whether_to_retry(httpserver, status, reason, retryable):
    httpserver.expect_request("/").respond_with_data("nope", status=status)
    error = refusal(lambda: fetch(url(httpserver)))
    assert (error.reason, error.retryable) == (reason, retryable)


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream"])
def test_media_types_outside_accept_are_refused(httpserver, content_type):
    httpserver.expect_request("/").respond_with_data(b"\x89PNG\r\n", content_type=content_type)
    error = refusal(lambda: fetch(url(httpserver)))
    assert (error.reason, error.retryable) == (f"unexpected content type {content_type}", False)


def test_a_response_without_content_type_is_refused(raw_server, monkeypatch):
    port = raw_server(
        lambda connection, stop: connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
        )
    )
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{port}")
    error = refusal(lambda: fetch(f"http://127.0.0.1:{port}/"))
    assert (error.reason, error.retryable) == ("the response has no Content-Type", False)


def test_accept_narrows_the_media_types(httpserver):
    httpserver.expect_request("/").respond_with_data("{}", content_type="application/json")
    assert fetch(url(httpserver)).content_type == "application/json"
    with pytest.raises(FetchError, match="unexpected content type application/json"):
        fetch(url(httpserver), accept=("application/atom+xml",))
    assert httpserver.log[-1][0].headers["Accept"] == "application/atom+xml"


# Charsets.

FRENCH = (
    "Le comité a étudié les critères de sécurité. "
    "Déjà très attendue, elle reçoit un accueil mitigé à Besançon."
)


def serve(server, body, content_type):
    server.expect_request("/").respond_with_data(body, headers={"Content-Type": content_type})
    return fetch(url(server))


def test_the_header_charset_decodes_a_latin1_page(httpserver):
    result = serve(
        httpserver, f"<p>{FRENCH}</p>".encode("latin-1"), "text/html; charset=ISO-8859-1"
    )
    assert result.text == f"<p>{FRENCH}</p>"
    assert result.encoding == "cp1252"  # what browsers use for pages labelled latin-1


def test_a_meta_charset_decodes_a_latin1_page(httpserver):
    page = f'<html><head><meta charset="iso-8859-1"></head><body>{FRENCH}</body></html>'
    result = serve(httpserver, page.encode("latin-1"), "text/html")
    assert FRENCH in result.text


def test_a_meta_http_equiv_decodes_a_windows_1252_page(httpserver):
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
        "</head><body>“Quoted” — said the report</body></html>"
    )
    result = serve(httpserver, page.encode("cp1252"), "text/html")
    assert "“Quoted” — said the report" in result.text


def test_the_xml_declaration_decodes_a_feed(httpserver):
    feed = f'<?xml version="1.0" encoding="ISO-8859-1"?><rss><title>{FRENCH}</title></rss>'
    result = serve(httpserver, feed.encode("latin-1"), "application/rss+xml")
    assert FRENCH in result.text


def test_a_page_without_any_charset_is_detected(httpserver):
    page = f"<html><body><h1>Résumé</h1><p>{FRENCH}</p><p>“Curly” quotes</p></body></html>"
    result = serve(httpserver, page.encode("cp1252"), "text/html")
    assert result.text == page
    assert result.encoding == "cp1252"


def test_a_page_without_any_charset_in_another_script_is_detected(httpserver):
    text = "Комиссия рекомендует правительству обеспечить доступ к бесплатному обслуживанию."
    result = serve(httpserver, text.encode("cp1251"), "text/plain")
    assert result.text == text


def test_undeclared_utf8_is_read_as_utf8(httpserver):
    result = serve(httpserver, FRENCH.encode(), "text/plain")
    assert (result.text, result.encoding) == (FRENCH, "utf-8")


def test_a_utf8_bom_wins_and_is_dropped(httpserver):
    page = f"<p>{FRENCH}</p>"
    result = serve(httpserver, b"\xef\xbb\xbf" + page.encode(), "text/html; charset=iso-8859-1")
    assert (result.text, result.encoding) == (page, "utf-8")


def test_a_utf16_bom_is_honoured(httpserver):
    result = serve(httpserver, FRENCH.encode("utf-16"), "text/plain")
    assert result.text == FRENCH


def test_a_wrong_header_charset_garbles_instead_of_crashing(httpserver):
    result = serve(httpserver, FRENCH.encode("latin-1"), "text/plain; charset=utf-8")
    assert result.text.startswith("Le comit\ufffd a \ufffdtudi\ufffd")


@pytest.mark.parametrize("charset", ["no-such-charset", "base64"])
def test_an_unusable_header_charset_falls_back_to_detection(httpserver, charset):
    result = serve(httpserver, FRENCH.encode("cp1252"), f"text/plain; charset={charset}")
    assert result.text == FRENCH


# TLS.


def test_an_untrusted_certificate_is_refused(tls_server, monkeypatch):
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{tls_server.port}")
    tls_server.expect_request("/").respond_with_data("secret", content_type="text/plain")
    error = refusal(lambda: fetch(f"https://127.0.0.1:{tls_server.port}/"))
    assert "CERTIFICATE_VERIFY_FAILED" in error.reason
    assert tls_server.log == []


def test_tls_checks_the_host_name_while_connecting_to_the_checked_address(
    tls_server, trusting_client, monkeypatch
):
    monkeypatch.setenv(ALLOW_ENV_VAR, f"{TEST_HOST}:{tls_server.port},127.0.0.1:{tls_server.port}")
    tls_server.expect_request("/").respond_with_data("over tls", content_type="text/plain")

    result = fetch(
        f"https://{TEST_HOST}:{tls_server.port}/",
        resolve=resolver("127.0.0.1"),
        client=trusting_client,
    )
    assert result.text == "over tls"

    # The same server under its IP address does not match the certificate's name.
    error = refusal(lambda: fetch(f"https://127.0.0.1:{tls_server.port}/", client=trusting_client))
    assert "CERTIFICATE_VERIFY_FAILED" in error.reason


@pytest.mark.parametrize("label", ["undefined", "idna", "punycode", "unicode_escape"])
def test_a_page_naming_a_codec_that_is_no_charset_is_still_read(httpserver, label):
    page = "<html><body><p>Caf\xe9 ouvert</p></body></html>".encode("latin-1")
    meta = f'<html><head><meta charset="{label}"></head><body>ouvert</body></html>'.encode()
    for body, header in [(page, f"text/html; charset={label}"), (meta, "text/html")]:
        httpserver.clear()
        result = serve(httpserver, body, header)
        assert "ouvert" in result.text


def test_an_ipvfuture_literal_is_refused_not_crashed_on():
    with pytest.raises(BlockedURLError, match="not an IP address literal"):
        check_url("http://[v1.fe80::a]/")


def test_the_newer_ipv6_documentation_range_is_refused():
    with pytest.raises(BlockedURLError, match="3fff::1 is not a public address"):
        check_url("http://[3fff::1]/")


def test_a_name_lookup_that_outlasts_the_deadline_gives_up():
    release = threading.Event()

    def stuck_resolver(host):
        release.wait(5)
        return ["10.0.0.1"]  # refused by the guard, should a late answer ever be used

    try:
        with pytest.raises(FetchError, match="took too long") as caught:
            fetch(f"https://{TEST_HOST}/", resolve=stuck_resolver, deadline=0.3)
        assert caught.value.retryable
    finally:
        release.set()


def test_host_clients_keep_one_client_per_host_name_and_close_the_oldest():
    with HostClients(max_hosts=2) as clients:
        first = clients.client_for("a.example.org")
        assert clients.client_for("a.example.org") is first
        # Another name on perhaps the same address never shares a client (nor a connection).
        other = clients.client_for("b.example.org")
        assert other is not first
        clients.client_for("c.example.org")  # a.example.org is now the least recently used
        assert first.is_closed and not other.is_closed
    assert other.is_closed


class KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    """Serves a small page over HTTP/1.1 keep-alive, noting each request's client port."""

    protocol_version = "HTTP/1.1"
    client_ports: list

    def do_GET(self):
        self.client_ports.append(self.client_address[1])
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        body = b"<p>hello</p>"
        self.send_response(200)
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def keep_alive_server(monkeypatch):
    """A local server that keeps connections open (pytest-httpserver always closes them);
    yields (its page's URL, the client port of each request)."""
    ports = []
    handler = type("Handler", (KeepAliveHandler,), {"client_ports": ports})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(ALLOW_ENV_VAR, f"127.0.0.1:{server.server_port}")
    yield f"http://127.0.0.1:{server.server_port}/page", ports
    server.shutdown()
    server.server_close()


def test_pooled_fetches_of_a_host_share_a_connection_and_unpooled_ones_do_not(
    keep_alive_server,
):
    url, ports = keep_alive_server
    with HostClients() as clients:
        for _ in range(3):
            assert fetch(url, clients=clients).text == "<p>hello</p>"
    assert len(set(ports)) == 1
    ports.clear()
    for _ in range(2):
        fetch(url)
    assert len(set(ports)) == 2


def test_pooled_304s_keep_their_connection(keep_alive_server):
    """An unchanged page is most of a watch list's checks: each must not cost a new
    connection (a 304's end has to be read before its connection can serve the next)."""
    url, ports = keep_alive_server
    with HostClients() as clients:
        etag = fetch(url, clients=clients).etag
        results = [fetch(url, etag=etag, clients=clients) for _ in range(3)]
    assert all(result.not_modified for result in results)
    assert len(ports) == 4 and len(set(ports)) == 1
