"""Reading what a source served: a body is only ever parsed, never fetched or opened again.

Only the guarded fetcher (tracker.fetching) may open a connection; a feed or page whose body
names a URL or a file must not make a parser reach for it.
"""

import socket
import threading
import uuid

import pytest

from tests.support.pages import local_url
from tracker.models import ChangeAlert, Evidence, FeedEntry, Source, SourceVersion
from tracker.monitoring import Outcome, check_source

pytestmark = pytest.mark.django_db


def secret_feed(marker):
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>{marker}</title>
<item><title>{marker} entry</title><link>https://example.org/{marker}</link>
<guid>{marker}</guid><description>{marker} summary</description></item>
</channel></rss>"""


class Listener:
    """A loopback port the fetch guard does not let through (a service inside our network):
    it records every connection and answers whatever arrives with a feed holding `marker`."""

    def __init__(self, marker):
        body = secret_feed(marker).encode()
        self.answer = (
            b"HTTP/1.0 200 OK\r\nContent-Type: application/rss+xml\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.connections = []
        self.stopping = threading.Event()
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        with self.socket:
            while not self.stopping.is_set():
                try:
                    connection, peer = self.socket.accept()
                except TimeoutError:
                    continue
                self.connections.append(peer)
                with connection:
                    connection.settimeout(1)
                    try:
                        connection.recv(65536)
                        connection.sendall(self.answer)
                    except OSError:
                        pass  # an FTP client waits for a greeting instead of sending

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=5)


@pytest.fixture
def marker():
    return f"secret-{uuid.uuid4().hex}"


@pytest.fixture
def listener(marker):
    started = Listener(marker)
    yield started
    started.stop()


def stored_anywhere(marker):
    """Whether `marker` reached anything staff or the public can read."""
    stored = [
        *SourceVersion.objects.values_list("title", "text", "url"),
        *ChangeAlert.objects.values_list("diff"),
        *FeedEntry.objects.values_list("guid", "link", "title", "summary"),
        *Evidence.objects.values_list("title", "excerpt", "url"),
        *Source.objects.values_list("title", "last_error"),
    ]
    return any(marker in value for row in stored for value in row)


def feed_serving(server, body, *, content_type="application/rss+xml"):
    """A feed source on the allowed local server whose body is `body`."""
    server.expect_request("/feed").respond_with_data(body, content_type=content_type)
    return Source.objects.create(url=local_url(server, "/feed"), kind=Source.Kind.FEED)


def assert_failed_clearly(source):
    assert check_source(source).outcome == Outcome.FAILED
    source.refresh_from_db()
    assert "not a valid RSS or Atom feed" in source.last_error
    assert not source.versions.exists()
    assert not source.entries.exists()
    return source.last_error


@pytest.mark.parametrize("scheme", ["http", "feed", "ftp"])
def test_a_feed_whose_body_is_a_url_is_not_fetched_by_the_parser(
    allow_local, listener, marker, scheme
):
    url = f"{scheme}://127.0.0.1:{listener.port}/internal.xml"
    assert f"the body starts '{url}'" in assert_failed_clearly(feed_serving(allow_local, url))
    assert listener.connections == []
    assert not stored_anywhere(marker)


@pytest.mark.parametrize("form", ["path", "file URL"])
def test_a_feed_whose_body_names_a_local_file_is_not_read(allow_local, tmp_path, marker, form):
    secret = tmp_path / "secret.xml"
    secret.write_text(secret_feed(marker))
    source = feed_serving(allow_local, str(secret) if form == "path" else secret.as_uri())
    assert_failed_clearly(source)
    assert not stored_anywhere(marker)


def test_a_feed_naming_outside_entities_and_a_dtd_reads_neither(
    allow_local, listener, marker, tmp_path
):
    secret = tmp_path / "secret.txt"
    secret.write_text(marker)
    body = f"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://127.0.0.1:{listener.port}/rss.dtd" [
  <!ENTITY file SYSTEM "{secret.as_uri()}">
  <!ENTITY remote SYSTEM "http://127.0.0.1:{listener.port}/entity">
]>
<rss version="2.0"><channel><title>News</title>
<item><title>Release &file; &remote;</title><guid>one</guid>
<link>https://example.org/one</link></item></channel></rss>"""
    source = feed_serving(allow_local, body)
    check_source(source)
    assert listener.connections == []
    assert not stored_anywhere(marker)


def test_a_well_formed_document_that_is_not_a_feed_fails_clearly(allow_local):
    source = feed_serving(allow_local, "<html><body><p>Just a page</p></body></html>")
    assert_failed_clearly(source)


def test_an_empty_feed_body_fails_clearly(allow_local):
    assert_failed_clearly(feed_serving(allow_local, ""))


def test_a_feed_declaring_another_encoding_than_its_transport_reads_right(allow_local):
    body = """<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel>
<title>Actualités</title><item><title>Réunification familiale</title><guid>r</guid>
<link>https://example.org/r</link></item></channel></rss>""".encode()
    source = feed_serving(allow_local, body, content_type="application/rss+xml; charset=utf-8")
    assert check_source(source).outcome == Outcome.FIRST_VERSION
    assert source.versions.get().title == "Actualités"
    assert source.entries.get().title == "Réunification familiale"


@pytest.mark.parametrize("form", ["url", "path", "markup"])
def test_a_page_whose_body_names_a_url_or_file_is_only_read_as_text(
    allow_local, listener, marker, tmp_path, form
):
    secret = tmp_path / "secret.html"
    secret.write_text(f"<html><body><p>{marker}</p></body></html>")
    body = {
        "url": f"http://127.0.0.1:{listener.port}/internal.html",
        "path": str(secret),
        "markup": f"""<!DOCTYPE html SYSTEM "http://127.0.0.1:{listener.port}/x.dtd" [
            <!ENTITY file SYSTEM "{secret.as_uri()}">]>
            <html><head><link rel="stylesheet" href="http://127.0.0.1:{listener.port}/s.css">
            </head><body><p>Release &file;</p>
            <iframe src="{secret.as_uri()}"></iframe>
            <img src="http://127.0.0.1:{listener.port}/i.png"></body></html>""",
    }[form]
    allow_local.expect_request("/page").respond_with_data(body, content_type="text/html")
    source = Source.objects.create(url=local_url(allow_local, "/page"))
    check_source(source)
    assert listener.connections == []
    assert not stored_anywhere(marker)
