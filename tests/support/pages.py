"""Pages a watched source serves, from a local test server (pytest-httpserver)."""

import html as htmllib
import re
import threading
import time

from werkzeug import Response

ARTICLE = (
    "USCIS announced that the final dates for irregular crossings in the parole processes for "
    "Cubans, Haitians, Nicaraguans and Venezuelans are {state}. Eligible people who crossed "
    "before the new date may now apply through a supporter in the United States, the agency "
    "said, adding that guidance for supporters will follow in the coming weeks."
)


def page(state="unchanged", *, menu=("Home", "News"), stamp="Last updated: 2024-08-01 10:32"):
    items = "".join(f'<li><a href="/{item.lower()}">{item}</a></li>' for item in menu)
    return f"""<!doctype html><html><head><title>CHNV parole update</title></head><body>
    <nav><ul>{items}</ul></nav>
    <main><article><h1>CHNV parole update</h1><p>{ARTICLE.format(state=state)}</p>
    <p>A second paragraph explains who is eligible and how supporters file the form, with
    enough words that an extractor takes this article for the main content.</p>
    <p>{stamp}</p></article></main>
    <footer>Copyright 2024. Privacy policy. Contact us.</footer></body></html>"""


class Site:
    """A page whose content tests change, served with ETag and conditional GET."""

    def __init__(self, body):
        self.body = body
        self.requests = []

    def handler(self, request):
        self.requests.append(request)
        etag = f'"{hash(self.body) & 0xFFFFFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(self.body, content_type="text/html; charset=utf-8", headers={"ETag": etag})


class ConcurrencyProbe:
    """Serves pages slowly and counts how many requests it handles at once."""

    delay = 0.05  # seconds each request takes

    def __init__(self):
        self.lock = threading.Lock()
        self.current = self.peak = 0

    def handler(self, request):
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        time.sleep(self.delay)
        with self.lock:
            self.current -= 1
        return Response(self.body(request), content_type="text/html")

    def body(self, request):
        return page(request.path)


def local_url(server, path):
    """The server's URL by address: the fetch guard allows exact 127.0.0.1:port pairs."""
    return f"http://127.0.0.1:{server.port}{path}"


def text_of(html):
    """The visible text, whitespace collapsed, for assertions about what a visitor reads."""
    html = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", html)))
