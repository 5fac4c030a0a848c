"""Turn what a source served into text worth comparing: a page's main text or a feed's
entries, normalised and hashed, so that menus, ads and timestamps never count as changes.

No Django models or settings: bulk checks run it in processes of their own (see
`tracker.observing`).
"""

import datetime
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass
from html import unescape
from urllib.parse import urljoin

from .fetching import FetchError
from .links import link_url

# Lines that only say when a page was updated or printed: they change without news.
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE = rf"""(?:
    \d{{4}}-\d{{1,2}}-\d{{1,2}}
    | \d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}
    | {_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}
    | \d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}
)"""
_TIME = r"\d{1,2}:\d{2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?(?:\s*[a-z]{2,5})?"
TIMESTAMP_LINE = re.compile(
    rf"""^
    (?:(?:page\s+)?(?:last\s+)?
       (?:updated|modified|reviewed|published|posted|retrieved|printed|accessed)
       (?:\s+on)?\s*:?\s*)?
    (?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?
    (?:{_DATE}(?:,?\s*(?:at\s+)?{_TIME})?|{_TIME})
    \.?$""",
    re.IGNORECASE | re.VERBOSE,
)
WHITESPACE = re.compile(r"\s+")
TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def normalise_text(text):
    """Return `text` in a canonical form: Unicode NFKC, one space between words, no blank or
    timestamp-only lines, so that only real wording changes alter the hash. NUL characters
    are dropped: no page means them, and PostgreSQL cannot store them."""
    lines = []
    for line in unicodedata.normalize("NFKC", (text or "").replace("\x00", "")).splitlines():
        line = WHITESPACE.sub(" ", line).strip()
        if line and not TIMESTAMP_LINE.match(line):
            lines.append(line)
    return "\n".join(lines)


def hash_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def extract_page(html, *, url=""):
    """Return (title, main text) of an HTML page, without menus, ads and footers."""
    # Imported on first use, as feedparser below: a run of unchanged (304) checks, and every
    # command that only loads the admin, never pays their start-up (a fifth of a second).
    import trafilatura

    # fast: trafilatura's own algorithm only, without its readability and jusText fallbacks,
    # which triple the cost; a page they would rescue falls back to its visible text below.
    document = trafilatura.bare_extraction(
        html,
        url=url or None,
        fast=True,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
    )
    text = document.text if document else ""
    if not text:
        # Short or unusual pages defeat the extractor: fall back to all visible text.
        text = trafilatura.html2txt(html) or ""
    return page_title(html), normalise_text(text)


def page_title(html):
    # The <title> is all we need of the metadata; the full metadata pass doubles the cost.
    match = TITLE.search(html)
    return WHITESPACE.sub(" ", unescape(match.group(1))).strip()[:500] if match else ""


def extract_feed(text, *, base_url=""):
    """Return (title, entries, canonical text) of an RSS/Atom feed.

    Raises FetchError for a body that is not one.
    """
    parsed = parse_feed(text)
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        raise FetchError(f"not a valid RSS or Atom feed ({feed_problem(parsed, text)})")
    entries = [feed_entry_fields(entry, base_url=base_url) for entry in parsed.entries]
    entries = [entry for entry in entries if entry["guid"]]
    canonical = "\n".join(f"{entry['title']} <{entry['link']}>" for entry in entries)
    return parsed.feed.get("title", "")[:500], entries, normalise_text(canonical)


def parse_feed(text):
    """Return what feedparser reads in `text`, the body the guarded fetcher decoded.

    Given a string, feedparser fetches it if it looks like a URL and opens it if it names
    a file, past the fetch guard; given bytes, it still tries them as a file name. A stream
    is only ever read. The body was decoded already, so its UTF-8 bytes are declared as such:
    feedparser must not decode them again by the document's own declaration.
    """
    import feedparser

    return feedparser.parse(
        io.BytesIO(text.encode("utf-8")),
        response_headers={"content-type": "application/xml; charset=utf-8"},
    )


def feed_problem(parsed, text):
    """Return why a parsed body with no entries is no feed, for the staff."""
    if not text.strip():
        return "the body is empty"
    problem = str(parsed.bozo_exception) if parsed.bozo else "no RSS or Atom element"
    # The body's start shows what was served instead, such as a bare URL or file name.
    return f"{problem}; the body starts {WHITESPACE.sub(' ', text.strip()[:60])!r}"


def web_link(href, *, base_url=""):
    """Return `href` made absolute if it is an http(s) link, else "": a feed may offer
    javascript: or data: links, which must never reach a page as an href."""
    return link_url(urljoin(base_url, (href or "").strip()))


def fragment_text(fragment):
    """Return the text of an HTML fragment (or plain text), as a feed entry's summary is:
    trafilatura reads only whole documents, and gives "" for a bare `<p>` or sentence."""
    import trafilatura

    if not fragment.strip():
        return ""
    return normalise_text(trafilatura.html2txt(f"<html><body>{fragment}</body></html>") or "")


def feed_entry_fields(entry, *, base_url=""):
    published = entry.get("published_parsed") or entry.get("updated_parsed")
    published_at = datetime.datetime(*published[:6], tzinfo=datetime.UTC) if published else None
    link = web_link(entry.get("link", ""), base_url=base_url)
    return {
        "guid": (entry.get("id") or link)[:1000],
        "link": link[:1000],
        "title": normalise_text(entry.get("title", ""))[:500],
        "summary": fragment_text(entry.get("summary", "")),
        "published_at": published_at,
    }


@dataclass(frozen=True)
class Extract:
    """What a page or feed says, ready to compare with its source's kept versions."""

    title: str
    text: str  # normalised
    content_hash: str
    entries: tuple = ()  # a feed's entries, as feed_entry_fields returns them


def extract(body, *, is_feed, url):
    """Return the Extract of a page, or of a feed if `is_feed`, served at `url`.

    Raises FetchError for a feed that cannot be read.
    """
    if is_feed:
        title, entries, text = extract_feed(body, base_url=url)
    else:
        (title, text), entries = extract_page(body, url=url), []
    return Extract(title, text, hash_text(text), tuple(entries))
