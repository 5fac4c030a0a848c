"""Read a document in any format we accept and return it as CommonMark Markdown text.

PDF, Word (DOCX), HTML and plain text copied out of a PDF become Markdown that keeps their
structure: headings, nested lists, bold lead-ins, tables. Markdown and CSV pass through as
they are. The importer's own parsers then run on the text, whatever the file was.

Django-free: `fetch_document()` downloads through the guarded fetcher, nothing else touches
the network, and HTML is parsed without loading anything it references.
"""

import contextlib
import io
import itertools
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .fetching import FetchError, fetch

# Larger files are refused before parsing; real reports are a few MB even as PDF.
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024

PDF = "pdf"
DOCX = "docx"
HTML = "html"
TEXT = "text"  # plain text, tidied (hard line breaks, page furniture, footnote markers)
VERBATIM = "verbatim"  # Markdown and CSV: passed through unchanged

KIND_BY_SUFFIX = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".html": HTML,
    ".htm": HTML,
    ".xhtml": HTML,
    ".txt": TEXT,
    ".text": TEXT,
    ".md": VERBATIM,
    ".markdown": VERBATIM,
    ".csv": VERBATIM,
}
DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
KIND_BY_MEDIA_TYPE = {
    "application/pdf": PDF,
    DOCX_MEDIA_TYPE: DOCX,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "text/plain": TEXT,
    "text/markdown": VERBATIM,
    "text/csv": VERBATIM,
}
SUFFIX_BY_KIND = {PDF: ".pdf", DOCX: ".docx", HTML: ".html", TEXT: ".txt", VERBATIM: ""}


class UnreadableDocument(ValueError):
    """A document that cannot be read; the message is written for the person importing it."""


def document_markdown(data: bytes, *, filename: str = "", content_type: str = "") -> str:
    """Return the document in `data` as Markdown (CSV stays CSV), or raise UnreadableDocument.

    The kind is told by the content's first bytes (PDF, a Word zip, HTML), then by the file's
    extension, then by the media type it was served with.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UnreadableDocument(
            f"This file is {len(data) / 1024 / 1024:.1f} MB; documents are limited to "
            f"{MAX_DOCUMENT_BYTES // (1024 * 1024)} MB."
        )
    kind = document_kind(data, filename=filename, content_type=content_type)
    if kind == PDF:
        return pdf_markdown(data, name=filename)
    if kind == DOCX:
        return docx_markdown(data, name=filename)
    if kind == HTML:
        return html_markdown(data)
    text = decode_text(data)
    return tidy_plain_text(text) if kind == TEXT else text


def document_kind(data: bytes, *, filename: str = "", content_type: str = "") -> str:
    head = data[:1024].lstrip()
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"PK\x03\x04"):
        return DOCX
    if re.match(rb"(?:\xef\xbb\xbf)?\s*(?:<!doctype\s+html|<html)", head, re.IGNORECASE):
        return HTML
    by_suffix = KIND_BY_SUFFIX.get(Path(filename).suffix.lower())
    if by_suffix:
        return by_suffix
    media_type = content_type.partition(";")[0].strip().lower()
    return KIND_BY_MEDIA_TYPE.get(media_type, VERBATIM)


def decode_text(data: bytes) -> str:
    """Return UTF-8 bytes as text; refuse binary, non-UTF-8 and empty input."""
    if b"\x00" in data:
        raise UnreadableDocument("This is a binary file, not a text document.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableDocument(
            f"This file is not UTF-8 text (undecodable byte at position {error.start})."
        ) from None
    if not text.strip():
        raise UnreadableDocument("The document is empty.")
    return text


# --- Fetching --------------------------------------------------------------------------------

FETCH_ACCEPT = (
    "text/html",
    "application/xhtml+xml",
    "application/pdf",
    DOCX_MEDIA_TYPE,
    "text/plain",
    "text/markdown",
    "text/csv",
)


def is_url(value: str) -> bool:
    return bool(re.match(r"https?://", str(value), re.IGNORECASE))


def fetch_document(url: str) -> tuple[bytes, str, str]:
    """Download a document through the fetch guard; return its bytes, a file name and the
    media type it was served with."""
    try:
        result = fetch(url, accept=FETCH_ACCEPT, max_bytes=MAX_DOCUMENT_BYTES, deadline=60.0)
    except FetchError as error:
        raise UnreadableDocument(f"Could not fetch {url}: {error.reason}.") from None
    name = Path(result.url.split("?")[0].split("#")[0]).name
    kind = KIND_BY_MEDIA_TYPE.get(result.content_type, VERBATIM)
    # Text was decoded with the charset the server declared: pass it on as UTF-8.
    body = result.text.encode("utf-8") if result.text else result.body
    if kind != VERBATIM and KIND_BY_SUFFIX.get(Path(name).suffix.lower()) != kind:
        name = f"{name or 'document'}{SUFFIX_BY_KIND[kind]}"
    return body, name, result.content_type


# --- Shared text helpers ---------------------------------------------------------------------

# A list item's marker: a bullet glyph (Word's PDFs draw theirs from Symbol or Wingdings, in
# the private use area), "1." / "1)", "a)" / "(a)", "i." ...
LIST_MARKER_RE = re.compile(
    r"^\s*(?:(?P<bullet>[•●▪■◦○‣∙·➢►❖\uf0b7\uf0a7\uf076\uf0d8])\s*(?=\S)"
    r"|(?P<bullet_ascii>[-*+\u2013\u2014])\s+"
    r"|(?P<number>\d{1,3})[.)]\s+"
    r"|(?P<letter>\(?[a-z]\)|\(?[ivx]{1,4}\))\s+)"
)
SUPERSCRIPT_DIGITS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
# A footnote reference typed as digits right after a word's closing punctuation: "border.12".
FOOTNOTE_AFTER_PUNCTUATION_RE = re.compile(
    r"(?<=[A-Za-z][.,;:!?)\"\u201d\u2019])\d{1,3}(?=\s|$)", re.MULTILINE
)
SUPERSCRIPT_RE = re.compile(f"[{SUPERSCRIPT_DIGITS}]+")
# A line that is only a page number: "7", "Page 7", "7 of 40", "- 7 -".
PAGE_NUMBER_RE = re.compile(
    r"^\s*(?:[-\u2013\u2014]\s*)?(?:page\s+)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?"
    r"(?:\s*[-\u2013\u2014])?\s*$",
    re.IGNORECASE,
)
SENTENCE_END = (".", "!", "?", ":", ";", '"', "\u201d", "\u2019", ")")


def list_item(text: str) -> tuple[str, str] | None:
    """Return (Markdown marker, rest) for a line that opens a list item, else None."""
    match = LIST_MARKER_RE.match(text)
    if not match:
        return None
    rest = text[match.end() :].strip()
    if match["bullet"] or match["bullet_ascii"]:
        return "-", rest
    if match["number"]:
        return f"{match['number']}.", rest
    # Lettered and roman items have no CommonMark form: a bullet that keeps the label.
    return "-", f"{match['letter']} {rest}"


def join_words(previous: str, following: str, *, hyphenated: set[str]) -> str:
    """Join a hard-wrapped line to the next, mending a word split at the line's end."""
    split = re.search(r"([A-Za-z]+)-$", previous)
    if split and following[:1].islower():
        second = re.match(r"[A-Za-z]+", following)
        whole = f"{split[1]}-{second[0] if second else ''}".lower()
        if whole not in hyphenated:
            return previous[:-1] + following
        return previous + following
    return f"{previous} {following}"


def hyphenated_words(text: str) -> set[str]:
    """Words the text spells with a hyphen on one line: keep those hyphens at line ends."""
    return {word.lower() for word in re.findall(r"[A-Za-z]+-[A-Za-z]+", text)}


def without_footnote_markers(text: str) -> str:
    return SUPERSCRIPT_RE.sub("", FOOTNOTE_AFTER_PUNCTUATION_RE.sub("", text))


# --- Plain text ------------------------------------------------------------------------------

# A line in copied text that starts a heading rather than continuing a paragraph.
HEADING_LINE_RE = re.compile(
    r"^\s*(?:#{1,6}\s|(?:recommendation|section|chapter|part)\s+\d|\d+(?:\.\d+)+\.?\s)",
    re.IGNORECASE,
)
# A line repeated this many times, short and not a sentence, is a running header or footer.
MIN_RUNNING_REPEATS = 3
MAX_RUNNING_LENGTH = 90
# ... and stands within this many lines of a page break.
PAGE_EDGE_DISTANCE = 3


def tidy_plain_text(text: str) -> str:
    """Tidy text copied out of a PDF; text that is already clean comes back unchanged.

    Running headers and footers (short lines repeated on most pages) and bare page numbers go;
    so do footnote markers. Hard-wrapped lines are joined into their paragraph, mending words
    hyphenated at line ends, while list items and heading-like lines keep their own lines.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.replace("\f", "\n\f\n").split("\n")
    running = running_lines(lines)
    lines = ["" if line == "\f" else line for line in lines]
    kept = []
    removed = False
    for line in lines:
        if line.strip() and (line.strip() in running or PAGE_NUMBER_RE.match(line)):
            removed = True
            continue
        kept.append(without_footnote_markers(line) if not is_code_line(line) else line)
    if removed:
        kept = join_across_removed(kept)
    hyphenated = hyphenated_words("\n".join(kept))
    width = wrap_width(kept) if is_hard_wrapped(kept) else 0
    out: list[str] = []
    wrapped = False  # whether the last line in `out` was cut by the wrap (so continues)
    for line in kept:
        previous = out[-1] if out else ""
        if (
            wrapped
            and previous.strip()
            and line.strip()
            and not starts_own_line(line)
            and not HEADING_LINE_RE.match(previous)
        ):
            out[-1] = join_words(previous.rstrip(), line.strip(), hyphenated=hyphenated)
        else:
            out.append(line)
        # A line that stops well short of the wrap width ended its paragraph or heading.
        wrapped = bool(width) and len(line.strip()) >= width * WRAPPED_LINE_RATIO
    result = "\n".join(out)
    if text.endswith("\n") and not result.endswith("\n"):
        result += "\n"
    return result if result.strip() else text


# A line at least this share of the text's usual line length was hard-wrapped.
WRAPPED_LINE_RATIO = 0.6


def is_hard_wrapped(lines: list[str]) -> bool:
    """Whether the text was cut into lines of about one width: most lines followed by another
    line of their paragraph are long, where a title over a byline is not."""
    width = wrap_width(lines)
    followed = [
        len(line.strip())
        for line, following in itertools.pairwise(lines)
        if line.strip() and following.strip()
    ]
    long = [length for length in followed if length >= width * 0.75]
    return len(long) >= 2 and len(long) * 3 >= len(followed) * 2


def wrap_width(lines: list[str]) -> int:
    """The length of the text's long lines: where a hard-wrapping program cut them."""
    lengths = sorted(len(line.strip()) for line in lines if line.strip())
    return lengths[int(len(lengths) * 0.8)] if lengths else 0


def is_code_line(line: str) -> bool:
    return line.startswith("    ")


def starts_own_line(line: str) -> bool:
    return bool(list_item(line) or HEADING_LINE_RE.match(line) or line.startswith(("|", ">")))


def running_lines(lines: list[str]) -> set[str]:
    """Short lines repeated on several pages, next to a page break (a form feed or a bare
    page number) most times: a subsection heading repeated in each chapter is not one."""
    content = [line.strip() for line in lines if line.strip()]
    breaks = [
        index for index, line in enumerate(content) if line == "\f" or PAGE_NUMBER_RE.match(line)
    ]
    near_break: Counter = Counter()
    for index, line in enumerate(content):
        if any(abs(index - at) <= PAGE_EDGE_DISTANCE for at in breaks):
            near_break[line] += 1
    counts = Counter(content)
    return {
        line
        for line, count in counts.items()
        if count >= MIN_RUNNING_REPEATS
        and near_break[line] * 3 >= count * 2
        and line != "\f"
        and len(line) <= MAX_RUNNING_LENGTH
        and not line.endswith(SENTENCE_END)
        and not starts_own_line(line)
        and not line.startswith("#")
    }


def join_across_removed(lines: list[str]) -> list[str]:
    """Where page furniture was removed mid-sentence, drop the blank lines it left, so the
    sentence's two halves join; elsewhere keep one blank line."""
    out: list[str] = []
    blank = False
    for line in lines:
        if not line.strip():
            blank = True
            continue
        if out and blank:
            previous = out[-1].rstrip()
            continues = not previous.endswith(SENTENCE_END) and line.strip()[:1].islower()
            if not continues:
                out.append("")
        out.append(line)
        blank = False
    return out


# --- Inline Markdown ----------------------------------------------------------------------


@dataclass
class Inline:
    """Running text as words, each bold or not; rendered with ** around each bold run."""

    words: list[tuple[str, bool]] = field(default_factory=list)

    def add(self, text: str, *, bold: bool = False):
        for word in text.split():
            self.words.append((word, bold))

    def markdown(self) -> str:
        out = []
        run: list[str] = []
        run_bold = False
        for word, bold in [*self.words, ("", None)]:
            if bold is not run_bold and run:
                joined = " ".join(run)
                out.append(f"**{joined}**" if run_bold else joined)
                run = []
            run_bold = bold
            if word:
                run.append(escape_inline(word))
        return " ".join(out)

    def __bool__(self):
        return bool(self.words)


def escape_inline(word: str) -> str:
    # Keep a literal "*" or "_" from turning neighbouring text into emphasis.
    return re.sub(r"([*_`\\])", r"\\\1", word)


# --- PDF -------------------------------------------------------------------------------------

BOLD_FONT_RE = re.compile(r"bold|black|heavy|semibold|demibold", re.IGNORECASE)
# A line at least this much larger than the body text is a heading.
HEADING_SIZE_RATIO = 1.15
# Characters this much smaller than the body, raised above their line, are footnote markers.
SUPERSCRIPT_SIZE_RATIO = 0.85
# Extra space between lines, as a share of the body size, that starts a new paragraph.
PARAGRAPH_GAP_RATIO = 0.4
# Typesetting ligatures, spelled out so that words read and match as typed.
LIGATURES = str.maketrans(
    {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}
)
# Lines this close to a page's top or bottom may be running headers or footers.
EDGE_LINES = 2
# Running headers and footers are short; a list item or a long line at a page's edge is text,
# even when every chapter ends with one much like it.
RUNNING_MAX_CHARS = 80


@dataclass
class PdfLine:
    words: list[dict]
    page: int
    top: float
    bottom: float
    x0: float
    size: float
    text: str = ""
    table: str = ""  # a table found on the page, as a Markdown pipe table


def pdf_markdown(data: bytes, *, name: str = "") -> str:
    from pdfminer.pdfdocument import PDFPasswordIncorrect

    label = name or "this PDF"
    try:
        pages, ruled = [], []
        for number, (words, has_rules) in enumerate(pdf_page_words(data)):
            pages.append(pdf_lines(words, number))
            if has_rules:
                ruled.append(number)
        if ruled:
            add_pdf_tables(data, pages, ruled)
    except Exception as error:  # pdfminer raises many kinds for a damaged file
        # Some wrappers keep the original error as their first argument.
        cause = error.args[0] if error.args and isinstance(error.args[0], Exception) else error
        if isinstance(cause, PDFPasswordIncorrect) or "encrypt" in str(cause).lower():
            raise UnreadableDocument(
                f"{label} is encrypted with a password: save an unprotected copy and import that."
            ) from None
        message = str(cause) or type(cause).__name__
        raise UnreadableDocument(f"{label} is not a readable PDF ({message}).") from None
    if not any(line.text for page in pages for line in page):
        raise UnreadableDocument(
            f"This PDF has no text layer (a scanned image?): {label}. Run it through OCR, or "
            "import its text instead."
        )
    return pdf_lines_markdown(pages)


def pdf_page_words(data: bytes):
    """Yield each page's words as dicts: text, x0, x1, top, bottom, size, fontname.

    pdfminer (the engine under pdfplumber) is driven directly with a device that keeps only
    what we use: pdfplumber's own character objects cost three times as much, and a 40-page
    report must read in well under five seconds.
    """
    from pdfminer.pdfdevice import PDFTextDevice
    from pdfminer.pdffont import PDFUnicodeNotDefined
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.utils import apply_matrix_rect

    class WordCollector(PDFTextDevice):
        def __init__(self, resources):
            super().__init__(resources)
            self.words: list[dict] = []
            self.page_top = 0.0
            self.last: dict | None = None
            self.rules = 0

        def paint_path(self, graphicstate, stroke, fill, evenodd, path):
            self.rules += sum(1 for segment in path if segment[0] in ("l", "re"))

        def render_char(self, matrix, font, fontsize, scaling, rise, cid, ncs, graphicstate):
            try:
                text = font.to_unichr(cid).translate(LIGATURES)
            except PDFUnicodeNotDefined:
                text = ""
            adv = font.char_width(cid) * fontsize * scaling
            descent = font.get_descent() * fontsize
            x0, y0, x1, y1 = apply_matrix_rect(
                matrix, (0, descent + rise, adv, descent + rise + fontsize)
            )
            x0, x1 = min(x0, x1), max(x0, x1)
            top, bottom = self.page_top - max(y0, y1), self.page_top - min(y0, y1)
            size = bottom - top
            fontname = str(font.fontname)
            last = self.last
            if not text or text.isspace():
                self.last = None
            elif (
                last is not None
                and last["fontname"] == fontname
                and abs(last["size"] - size) < 0.1
                and abs(last["top"] - top) < size * 0.3
                and -size * 0.1 <= x0 - last["x1"] <= size * 0.15
            ):
                last["text"] += text
                last["x1"] = x1
            else:
                self.last = {
                    "text": text, "x0": x0, "x1": x1, "top": top, "bottom": bottom,
                    "size": size, "fontname": fontname,
                }  # fmt: skip
                self.words.append(self.last)
            return adv

    resources = PDFResourceManager(caching=True)
    device = WordCollector(resources)
    interpreter = PDFPageInterpreter(resources, device)
    for page in PDFPage.get_pages(io.BytesIO(data), check_extractable=False):
        device.words, device.last, device.rules = [], None, 0
        device.page_top = page.mediabox[3]
        interpreter.process_page(page)
        # Ruled lines may draw a table: only then is the page read again for its tables.
        yield device.words, device.rules >= MIN_TABLE_RULES


# A page drawing this many straight lines or rectangles may hold a table.
MIN_TABLE_RULES = 4


def add_pdf_tables(data: bytes, pages: list[list[PdfLine]], numbers: list[int]):
    """Replace the words of each ruled table on the given pages with one pipe table.

    pdfplumber finds tables by their rules; it is slow, so it reads only these pages.
    """
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data), pages=[number + 1 for number in numbers]) as pdf:
        for number, plumbed in zip(numbers, pdf.pages, strict=True):
            for table in plumbed.find_tables():
                rows = [
                    [" ".join((cell or "").split()).replace("|", "\\|") for cell in row]
                    for row in table.extract()
                ]
                if len(rows) < 2 or max(map(len, rows)) < 2:
                    continue
                x0, top, x1, bottom = table.bbox
                page = pages[number]
                inside = [
                    line
                    for line in page
                    if x0 - 1 <= line.x0 <= x1 and top - 1 <= line.top and line.bottom <= bottom + 1
                ]
                page[:] = [line for line in page if line not in inside]
                page.append(PdfLine([], number, top, bottom, x0, 0, table=pipe_table(rows)))
                page.sort(key=lambda line: line.top)


def pdf_lines(words: list[dict], number: int) -> list[PdfLine]:
    lines: list[PdfLine] = []
    for word in sorted(words, key=lambda word: (word["bottom"], word["x0"])):
        line = lines[-1] if lines else None
        # Same line when the boxes overlap by half the smaller one: raised footnote markers
        # and mixed sizes stay on their line.
        overlap = min(word["bottom"], line.bottom) - max(word["top"], line.top) if line else 0
        smaller = min(word["bottom"] - word["top"], line.bottom - line.top) if line else 0
        if line and overlap >= smaller / 2:
            line.words.append(word)
            line.top = min(line.top, word["top"])
            line.bottom = max(line.bottom, word["bottom"])
        else:
            lines.append(
                PdfLine([word], number, word["top"], word["bottom"], word["x0"], word["size"])
            )
    for line in lines:
        line.words.sort(key=lambda word: word["x0"])
        line.x0 = line.words[0]["x0"]
        sizes = Counter()
        for word in line.words:
            word["size"] = round(word["size"], 1)
            sizes[word["size"]] += len(word["text"])
        line.size = sizes.most_common(1)[0][0]
        line.text = " ".join(word["text"] for word in line.words)
    return lines


def pdf_lines_markdown(pages: list[list[PdfLine]]) -> str:
    body_size = body_text_size(pages)
    drop_running_furniture(pages, body_size=body_size)
    drop_footnotes(pages, body_size=body_size)
    lines = [line for page in pages for line in page]
    heading_sizes = sorted(
        {line.size for line in lines if line.size >= body_size * HEADING_SIZE_RATIO},
        reverse=True,
    )
    heading_level = {size: min(rank, 6) for rank, size in enumerate(heading_sizes, start=1)}
    hyphenated = hyphenated_words("\n".join(line.text for line in lines))
    # A gap wider than a body line's usual one by this much starts a new paragraph.
    paragraph_gap = body_line_gap(pages, body_size) + body_size * PARAGRAPH_GAP_RATIO

    blocks: list[str] = []
    current: Inline | None = None
    current_prefix = ""
    list_indents: list[float] = []  # x0 of each open list level
    list_widths: list[int] = []
    previous: PdfLine | None = None

    def flush():
        nonlocal current
        if current:
            blocks.append(current_prefix + current.markdown())
        current = None

    for line in lines:
        if line.table:
            flush()
            list_indents.clear()
            list_widths.clear()
            blocks.append(line.table)
            previous = line
            continue
        words = [word for word in line.words if not is_footnote_marker(word, line, body_size)]
        if not words:
            continue
        text = " ".join(word["text"] for word in words)
        gap = line.top - previous.bottom if previous and previous.page == line.page else 0
        new_page = previous is not None and previous.page != line.page
        level = heading_level.get(line.size)
        if level:
            if (
                previous
                and current is not None
                and current_prefix.startswith("#")
                and previous.size == line.size
                and not new_page
                and gap < paragraph_gap + line.size
            ):
                current.add(text)  # a heading wrapped over two lines
            else:
                flush()
                list_indents.clear()
                list_widths.clear()
                current, current_prefix = Inline(), "#" * level + " "
                current.add(text)
            previous = line
            continue
        item = list_item(text)
        if item:
            flush()
            marker, rest = item
            while list_indents and line.x0 < list_indents[-1] - 2:
                list_indents.pop()
                list_widths.pop()
            if not list_indents or line.x0 > list_indents[-1] + 2:
                list_indents.append(line.x0)
                list_widths.append(len(marker) + 1)
            else:
                list_widths[-1] = len(marker) + 1
            indent = " " * sum(list_widths[:-1])
            current, current_prefix = Inline(), f"{indent}{marker} "
            add_pdf_words(current, words, skip_marker=text[: len(text) - len(rest)])
            previous = line
            continue
        paragraph_break = (
            current is None
            or current_prefix.startswith("#")
            or (gap > paragraph_gap and not new_page)
            or (new_page and previous.text.rstrip().endswith(SENTENCE_END))
        )
        if paragraph_break:
            flush()
            if list_indents and line.x0 > list_indents[0] + 2 and not new_page:
                indent = " " * sum(list_widths)
            else:
                list_indents.clear()
                list_widths.clear()
                indent = ""
            current, current_prefix = Inline(), indent
        elif current.words:
            mend_hyphen(current, words, hyphenated=hyphenated)
        add_pdf_words(current, words)
        previous = line
    flush()
    return join_blocks(blocks) + "\n"


def add_pdf_words(inline: Inline, words: list[dict], *, skip_marker: str = ""):
    for word in words:
        text = word["text"]
        if skip_marker:
            stripped = skip_marker.strip()
            if text == stripped or stripped.startswith(text):
                skip_marker = stripped[len(text) :]
                continue
            if text.startswith(stripped):
                text = text[len(stripped) :]
            skip_marker = ""
            if not text:
                continue
        inline.add(text, bold=bool(BOLD_FONT_RE.search(word["fontname"])))


def mend_hyphen(inline: Inline, words: list[dict], *, hyphenated: set[str]):
    last, bold = inline.words[-1]
    first = words[0]["text"]
    joined = join_words(last, first, hyphenated=hyphenated)
    if " " not in joined:
        inline.words[-1] = (joined, bold)
        words[0] = {**words[0], "text": ""}
        words.pop(0)


def is_footnote_marker(word: dict, line: PdfLine, body_size: float) -> bool:
    text = word["text"].strip("*†‡,")
    raised = word["bottom"] < line.bottom - word["size"] * 0.15
    small = word["size"] < body_size * SUPERSCRIPT_SIZE_RATIO
    return bool(text) and text.isdigit() and len(text) <= 3 and small and raised


def body_text_size(pages: list[list[PdfLine]]) -> float:
    sizes = Counter()
    for page in pages:
        for line in page:
            if line.text:
                sizes[line.size] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 10.0


def body_line_gap(pages: list[list[PdfLine]], body_size: float) -> float:
    """The usual space between two lines of one body paragraph: the low end of the gaps
    between body lines (the high end are gaps between paragraphs)."""
    gaps = sorted(
        below.top - above.bottom
        for page in pages
        for above, below in itertools.pairwise(page)
        if above.size == body_size == below.size and below.top >= above.bottom
    )
    return gaps[len(gaps) // 4] if gaps else body_size * 0.3


def drop_running_furniture(pages: list[list[PdfLine]], *, body_size: float):
    """Remove running headers and footers (the same line at the top or bottom of most pages,
    page numbers aside) and bare page numbers at a page's edge. Headings larger than the body
    text stay, though each page may open with one."""

    def key(line):
        return re.sub(r"\d+", "#", line.text.strip().lower())

    edges = [
        [
            line
            for line in page[:EDGE_LINES] + page[-EDGE_LINES:]
            if line.size <= body_size
            and not line.table
            and len(line.text) <= RUNNING_MAX_CHARS
            and not LIST_MARKER_RE.match(line.text)
        ]
        for page in pages
    ]
    counts = Counter(text for edge in edges for text in {key(line) for line in edge})
    threshold = max(2, (len(pages) + 1) // 2)
    running = {text for text, count in counts.items() if count >= threshold}
    for page, edge in zip(pages, edges, strict=True):
        furniture = {
            id(line)
            for line in edge
            if (key(line) in running and len(pages) > 1) or PAGE_NUMBER_RE.match(line.text)
        }
        page[:] = [line for line in page if id(line) not in furniture]


def drop_footnotes(pages: list[list[PdfLine]], *, body_size: float):
    """Remove footnotes: small lines below a page's last body-size line, the first of them
    opening with its number ("12 UNHCR, Global Trends 2023.")."""
    for page in pages:
        last_body = max(
            (index for index, line in enumerate(page) if line.size >= body_size), default=-1
        )
        tail = page[last_body + 1 :]
        small = not any(line.table for line in tail) and all(
            line.size < body_size * SUPERSCRIPT_SIZE_RATIO for line in tail
        )
        if tail and small and re.match(rf"[\d{SUPERSCRIPT_DIGITS}*†]", tail[0].text):
            del page[last_body + 1 :]


def join_blocks(blocks: list[str]) -> str:
    """Blocks apart by a blank line, but consecutive list items on consecutive lines."""
    out = []
    for block in blocks:
        if out and not (is_list_block(block) and is_list_block(out[-1])):
            out.append("")
        out.append(block)
    return "\n".join(out)


def is_list_block(block: str) -> bool:
    return bool(re.match(r"\s*(?:[-*+]|\d+\.)\s", block)) or block.startswith("  ")


# --- DOCX ------------------------------------------------------------------------------------

HEADING_STYLE_RE = re.compile(r"^heading\s+([1-9])$", re.IGNORECASE)
LIST_STYLE_RE = re.compile(r"^list\s+(number|bullet|paragraph)(?:\s+(\d))?$", re.IGNORECASE)


def docx_markdown(data: bytes, *, name: str = "") -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    label = name or "this Word document"
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise UnreadableDocument(
            f"{label} is not a readable Word document (.docx): {error or 'damaged file'}."
        ) from None
    except Exception as error:  # lxml and zip errors inside a damaged package
        raise UnreadableDocument(
            f"{label} is not a readable Word document (.docx): {error}."
        ) from None
    return DocxReader(document).markdown()


class DocxReader:
    def __init__(self, document):
        self.document = document
        self.numbering = numbering_formats(document)
        body = document.element.body
        self.has_title = any(
            paragraph.style is not None and paragraph.style.name == "Title"
            for paragraph in document.paragraphs
        )
        self.body = body
        self.counters: list[int] = []
        self.widths: list[int] = []

    def markdown(self) -> str:
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        blocks: list[str] = []
        for element in self.body.iterchildren():
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "p":
                block = self.paragraph(Paragraph(element, self.document))
            elif tag == "tbl":
                self.reset_list()
                block = docx_table(Table(element, self.document))
            else:
                continue
            if block:
                blocks.append(block)
        text = join_blocks(blocks)
        if not text.strip():
            raise UnreadableDocument("The Word document has no text.")
        return text + "\n"

    def reset_list(self):
        self.counters.clear()
        self.widths.clear()

    def paragraph(self, paragraph) -> str:
        text = runs_markdown(paragraph)
        style = paragraph.style.name if paragraph.style is not None else ""
        if not text:
            return ""
        heading = HEADING_STYLE_RE.match(style)
        if style == "Title" or heading:
            self.reset_list()
            level = 1 if style == "Title" else int(heading[1]) + self.has_title
            return "#" * min(level, 6) + " " + text.replace("**", "")
        listing = self.list_level(paragraph, style)
        if listing is None:
            if not self.counters:
                return text
            if continues_list_item(paragraph, style):
                # A paragraph inside a list item keeps the list open, indented under it.
                return " " * sum(self.widths) + text
            self.reset_list()  # body text after a list: the list is over
            return text
        level, numbered = listing
        del self.counters[level + 1 :]
        del self.widths[level + 1 :]
        while len(self.counters) <= level:
            self.counters.append(0)
            self.widths.append(2)
        self.counters[level] += 1
        marker = f"{self.counters[level]}." if numbered else "-"
        self.widths[level] = len(marker) + 1
        return " " * sum(self.widths[:level]) + f"{marker} {text}"

    def list_level(self, paragraph, style: str) -> tuple[int, bool] | None:
        """Return (nesting level from 0, numbered?) for a list paragraph, else None."""
        num_pr = paragraph._p.pPr.numPr if paragraph._p.pPr is not None else None
        by_style = LIST_STYLE_RE.match(style)
        if num_pr is not None and num_pr.numId is not None and num_pr.numId.val != 0:
            level = num_pr.ilvl.val if num_pr.ilvl is not None else 0
            fmt = self.numbering.get((num_pr.numId.val, level))
            if fmt is None and by_style:
                return level, by_style[1].lower() == "number"
            return level, fmt not in (None, "bullet", "none")
        if by_style and by_style[1].lower() != "paragraph":
            level = int(by_style[2]) - 1 if by_style[2] else 0
            return level, by_style[1].lower() == "number"
        return None


def continues_list_item(paragraph, style: str) -> bool:
    """An unnumbered paragraph after a list item belongs to it when Word indents it or styles
    it as list text ("List Paragraph", "List Continue"); a plain body paragraph ends the list."""
    indent = paragraph.paragraph_format.left_indent
    return style.lower().startswith("list") or (indent is not None and indent > 0)


def numbering_formats(document) -> dict[tuple[int, int], str]:
    """Map (numId, level) to its number format ("decimal", "bullet", ...)."""
    try:
        numbering = document.part.numbering_part.element
    except (KeyError, NotImplementedError):
        # python-docx raises NotImplementedError for a document without a numbering part
        # (it cannot add one): such a document has no Word-numbered lists to read.
        return {}
    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    abstract = {}
    for definition in numbering.iter(f"{w}abstractNum"):
        levels = {}
        for lvl in definition.iter(f"{w}lvl"):
            fmt = lvl.find(f"{w}numFmt")
            levels[int(lvl.get(f"{w}ilvl"))] = fmt.get(f"{w}val") if fmt is not None else ""
        abstract[definition.get(f"{w}abstractNumId")] = levels
    formats = {}
    for num in numbering.iter(f"{w}num"):
        ref = num.find(f"{w}abstractNumId")
        if ref is None:
            continue
        for level, fmt in abstract.get(ref.get(f"{w}val"), {}).items():
            formats[(int(num.get(f"{w}numId")), level)] = fmt
    return formats


def runs_markdown(paragraph) -> str:
    inline = Inline()
    for run in paragraph.runs:
        bold = bool(run.bold) or (
            run.style is not None and run.style.name in ("Strong", "Bold") and run.bold is not False
        )
        inline.add(run.text, bold=bold)
    markdown = inline.markdown()
    # Runs split mid-word ("recom" + "mendation") must not gain a space: rebuild from text
    # when no bold run is involved.
    if not any(bold for _, bold in inline.words):
        return escape_text(" ".join(paragraph.text.split()))
    return markdown


def escape_text(text: str) -> str:
    return " ".join(escape_inline(word) for word in text.split())


def docx_table(table) -> str:
    rows = [
        [" ".join(cell.text.split()).replace("|", "\\|") for cell in row.cells]
        for row in table.rows
    ]
    return pipe_table(rows)


def pipe_table(rows: list[list[str]]) -> str:
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return ""
    width = max(map(len, rows))
    rows = [row + [""] * (width - len(row)) for row in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


# --- HTML ------------------------------------------------------------------------------------

# Elements that are never the document's content.
HTML_DROPPED = (
    "script",
    "style",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "noscript",
    "template",
    "iframe",
    "svg",
    "button",
    "select",
    "object",
    "embed",
)
HTML_BLOCKS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "ul",
    "ol",
    "li",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "dl",
    "dt",
    "dd",
    "pre",
    "figure",
    "figcaption",
    "hr",
    "address",
}


def html_markdown(data: bytes | str) -> str:
    import lxml.etree
    import lxml.html

    # No network, no entities, no DTD: the page is read as it is and nothing it names.
    parser = lxml.html.HTMLParser(
        no_network=True, remove_comments=True, remove_pis=True, recover=True
    )
    if isinstance(data, bytes):
        # Not UTF-8: lxml reads the charset the page declares.
        with contextlib.suppress(UnicodeDecodeError):
            data = data.decode("utf-8-sig")
    if isinstance(data, str):  # lxml refuses text that still declares an encoding
        data = re.sub(r"^\s*<\?xml[^>]*>", "", data)
    try:
        root = lxml.html.document_fromstring(data, parser=parser)
    except (lxml.etree.ParserError, ValueError) as error:
        raise UnreadableDocument(f"This HTML page cannot be read ({error}).") from None
    for element in root.xpath("|".join(f"//{tag}" for tag in HTML_DROPPED)):
        element.drop_tree()
    body = root.find("body") if root.find("body") is not None else root
    main = body.xpath(".//main|.//article")
    blocks = HtmlWriter().blocks(main[0] if len(main) == 1 else body)
    text = join_blocks([block for block in blocks if block.strip()])
    if not text.strip():
        raise UnreadableDocument("The page has no text.")
    return text + "\n"


class HtmlWriter:
    def blocks(self, element, *, indent: str = "") -> list[str]:
        """Return the Markdown blocks of an element's content, each line indented."""
        blocks: list[str] = []
        inline = Inline()

        def flush():
            nonlocal inline
            if inline:
                blocks.append(indent + inline.markdown())
            inline = Inline()

        if element.text:
            inline.add(element.text)
        for child in element:
            tag = child.tag if isinstance(child.tag, str) else ""
            if tag in HTML_BLOCKS:
                flush()
                blocks.extend(self.block(child, tag, indent=indent))
            elif tag == "br":
                flush()
            else:
                self.inline(child, inline)
            if child.tail:
                inline.add(child.tail)
        flush()
        return blocks

    def block(self, element, tag: str, *, indent: str) -> list[str]:
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            inline = Inline()
            self.inline(element, inline, bold=False)
            text = inline.markdown().replace("**", "")
            return [f"{indent}{'#' * int(tag[1])} {text}"] if text else []
        if tag in ("ul", "ol"):
            return self.list(element, numbered=tag == "ol", indent=indent)
        if tag == "table":
            rows = [
                [
                    " ".join(" ".join(cell.itertext()).split()).replace("|", "\\|")
                    for cell in row.xpath("./th|./td")
                ]
                for row in element.xpath(".//tr")
            ]
            table = pipe_table(rows)
            return ["\n".join(indent + line for line in table.splitlines())] if table else []
        if tag == "hr":
            return []
        return self.blocks(element, indent=indent)

    def list(self, element, *, numbered: bool, indent: str) -> list[str]:
        start = element.get("start", "1")
        number = int(start) if start.isdigit() else 1
        blocks = []
        for item in element:
            if not isinstance(item.tag, str) or item.tag != "li":
                continue
            marker = f"{number}." if numbered else "-"
            number += 1
            inner = self.blocks(item, indent=indent + " " * (len(marker) + 1))
            if not inner:
                continue
            first = inner[0][len(indent) + len(marker) + 1 :]
            if first[:1] == " " or first.startswith(("- ", "#")) or re.match(r"\d+\. ", first):
                blocks.append(f"{indent}{marker}")  # an item that opens with a nested list
                blocks.extend(inner)
            else:
                blocks.append(f"{indent}{marker} {first}")
                blocks.extend(inner[1:])
        return blocks

    def inline(self, element, inline: Inline, *, bold: bool = False):
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag == "sup" and is_footnote_text(element):
            return  # a footnote reference
        bold = bold or tag in ("strong", "b")
        if element.text:
            inline.add(element.text, bold=bold)
        for child in element:
            self.inline(child, inline, bold=bold)
            if child.tail:
                inline.add(child.tail, bold=bold)


def is_footnote_text(element) -> bool:
    text = "".join(element.itertext()).strip().strip("[]")
    return text.isdigit() or text in ("*", "†", "‡")
