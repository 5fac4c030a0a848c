"""Which stored URLs may become links: http(s) only.

Evidence, documents, sources and feed entries keep URLs that came from imports, feeds and
forms; a "javascript:" or "data:" one must never become a link a reader can follow. Pages,
feeds, mail, the admin and the feed reader all ask `link_url`, which shows such a URL as text
(its title, without a link) instead. Django-free, so every layer may use it.
"""

from urllib.parse import urlsplit

# Only these schemes become links.
LINK_SCHEMES = {"http", "https"}


def link_url(url):
    """Return `url` if it is an http(s) address, else "" (then no link is made)."""
    try:
        scheme = urlsplit(url or "").scheme.lower()
    except ValueError:
        return ""
    return url if scheme in LINK_SCHEMES else ""
