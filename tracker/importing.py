"""Import a document's recommendations from a Markdown report, an op-ed's text or CSV.

Parsing is pure: text in, `ParsedDocument` out. `import_document()` then finds owners and
themes against the agency directory and saves everything in one transaction, so a failed or
dry-run import leaves the database as it was. A new version of a stored document is matched
to it by text (`match_recommendations()`), so each ask keeps its history whatever its new code.
`export_csv()` writes the CSV format back out.
"""

import csv
import datetime
import hashlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone, translation

from . import reading
from .caching import note_data_changed
from .directory import CONGRESS, SHORT_NAMES, WHITE_HOUSE, ensure_agency_directory
from .ledger import mark_stale
from .models import (
    Agency,
    Document,
    FormerCode,
    Ownership,
    Publisher,
    Recommendation,
    Theme,
)
from .structure import document_title, find_asks, is_ask, plain_text

MARKDOWN = "markdown"
OP_ED = "op-ed"
CSV = "csv"
FORMATS = (MARKDOWN, OP_ED, CSV)
FORMAT_BY_SUFFIX = {".md": MARKDOWN, ".markdown": MARKDOWN, ".csv": CSV}

CSV_COLUMNS = (
    "code",
    "parent_code",
    "section",
    "title",
    "text",
    "note",
    "lead_agency",
    "supporting_agencies",
    "themes",
    "addressed_to",
    "priority",
)
REQUIRED_CSV_COLUMNS = ("code", "text")
# Separates the agencies and the themes listed in one CSV cell.
CSV_LIST_SEPARATOR = ";"
CSV_PRIORITY_VALUES = {
    **dict.fromkeys(("", "no", "false", "0"), False),
    **dict.fromkeys(("yes", "true", "1", "x"), True),
}

# Short titles are the first sentence of the text, cut to this many characters.
TITLE_MAX_LENGTH = 90
# Where a long first sentence may be cut into a title: a semicolon, colon or dash, or a comma
# opening a clause ("…, which", "…, including"); not the commas of a list or a name
# ("immediate, large-scale", "Population, Refugees, and Migration").
CLAUSE_BOUNDARY_RE = re.compile(
    r"[;:](?=\s)|\s[\u2013\u2014]\s|,(?=\s(?:including|which|who|whose|where|when|while|but|so"
    r"|such|especially|particularly|because|since|although|unless|until|the|with|without|to"
    r"|for|by|from|through|within|incluidos?|incluyendo|que|quienes?|donde|cuando|mientras"
    r"|pero|la|el|los|las|con|sin|para|por)\b)"
)
# A title cut at a clause boundary keeps at least this many characters.
MIN_CLAUSE_LENGTH = 30
# A bold span in running text needs this many words to be a recommendation, not a fact.
MIN_RECOMMENDATION_WORDS = 8
# After the last step of an op-ed come its closing paragraphs: keep this many as the note.
MAX_CLOSING_NOTE_PARAGRAPHS = 2

# Themes and the keywords that suggest them, matched at word starts with common endings.
THEME_KEYWORDS = {
    "Legal pathways": (
        "pathway",
        "parole",
        "visa",
        "CHNV",
        "Central American Minors",
        "family reunification",
    ),
    "Asylum": ("asylum", "refugee"),
    "Children": ("child", "minor"),
    "Mexico": ("Mexico", "Mexican"),
    "Humanitarian aid": ("food", "humanitarian", "shelter", "vaccine", "disaster"),
    "Funding": ("fund",),
    "Regional cooperation": ("declaration", "negotiate", "host countries", "regional"),
}
THEME_PATTERNS = {
    theme: re.compile(
        rf"\b(?:{'|'.join(map(re.escape, keywords))})(?:s|es|d|ed|ing|ren)?\b", re.IGNORECASE
    )
    for theme, keywords in THEME_KEYWORDS.items()
}

# --- Markdown ------------------------------------------------------------------------------

# The kinds of block a Markdown text is split into.
HEADING = "heading"
BULLET = "bullet"
PARAGRAPH = "paragraph"
RULE = "rule"

# A horizontal rule: it closes the numbered part of a report.
RULE_RE = re.compile(r"^(?:-{3,}|\*{3,}|_{3,})$")
# An ATX heading, "### Title", with optional closing hashes.
HEADING_RE = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.*?)(?:\s+#+)?$")
# A line bold from end to end, which some reports use as a heading: "**3. Title**".
BOLD_LINE_RE = re.compile(r"^(\*\*|__)(?P<text>(?:(?!\1).)+)\1$")
# List markers in any combination ("- » ", "* ", "•"); "*" needs a space so bold is not eaten.
BULLET_RE = re.compile(r"^(?:[-*+]\s+|[•»·]\s*)+")
# The number opening a section heading: "1. Title", "2) Title", "Recommendation 3: Title".
SECTION_NUMBER_RE = re.compile(
    r"^(?:recommendation\s+)?(?P<number>\d+)[.):]\s+(?P<text>\S.*)$", re.IGNORECASE
)
# A bold span; the closing marker may be missing when a page break split the span.
BOLD_RE = re.compile(r"(\*\*|__)(?P<text>.+?)(?:\1|\Z)", re.DOTALL)
# Words that make a bold span a recommendation rather than a highlighted fact or name.
RECOMMENDING_RE = re.compile(r"\b(?:should|must|recommends?|urges?|calls? on)\b", re.IGNORECASE)
WHITESPACE_RE = re.compile(r"\s+")
# A sentence ends at . ! or ? before a capital, but not after initials such as "U.S.".
SENTENCE_END_RE = re.compile(r"(?<![\s.][A-Z]\.)(?<=[.!?])\s+(?=[\"\u201c\u2018(]?[A-Z0-9])")

# --- Op-eds --------------------------------------------------------------------------------

# Site furniture around an op-ed: disclaimer, tag list, copyright, "more news" widgets.
BOILERPLATE_RE = re.compile(
    r"^(?:The views expressed by contributors\b.*|Tags\s.*|Copyright\b.*|©.*|More\s.*\sNews"
    r"|See [Aa]ll\b.*|Most [Pp]opular|Load [Mm]ore)$"
)
# A photo credit closes a caption; the whole caption paragraph goes with it.
PHOTO_CREDIT_RE = re.compile(r"(?:Getty Images|AP Photo|Reuters|iStock|Shutterstock)$")
# An op-ed's steps: "First, ...", "Secondly, ...", "Finally, ...".
STEP_RE = re.compile(
    r"^(?P<ordinal>First|Second|Third|Fourth|Fifth|Sixth|Seventh|Eighth|Ninth|Tenth|Finally"
    r"|Lastly)(?:ly)?,\s+(?P<text>\S.*)$",
    re.DOTALL,
)
LAST_STEP_ORDINALS = {"Finally", "Lastly"}
# A person's name: two to four capitalised words.
NAME = r"(?P<name>[A-Z][\w.'\u2019-]+(?:\s+[A-Z][\w.'\u2019-]+){1,3})"
# The closing bio, whose subject is the author: "Dan Restrepo served as ...".
BIO_RE = re.compile(
    rf"^{NAME},?\s+(?:is|was|served|serves|has|had|works|worked|leads|led|directs|teaches)\b"
)
BYLINE_RE = re.compile(rf"^By\s+{NAME}$")
# Paragraphs are separated by blank lines.
PARAGRAPH_BREAK_RE = re.compile(r"\n\s*\n")

# --- Owners --------------------------------------------------------------------------------

# Names that contain an agency's name but do not mean the agency: the CBP One app, and "the
# President of" a country other than the United States (whose own name is a longer alias).
NOT_AGENCY_TERMS = ("CBP One", "the President of")

# The verb after a recommendation's grammatical subject: "USCIS and the State Department should",
# "La COMAR debe".
MODAL = (
    r"should|must|shall|ought to|needs? to|has to|have to"
    r"|debe|deben|debería|deberían|tiene que|tienen que|ha de|han de"
)
SUBJECT_VERB_RE = re.compile(rf"\b(?:{MODAL})\b", re.IGNORECASE)
# What may stand before the agency in a subject: "The", "The Director of", "El Secretario de"
# (each word followed by a space).
SUBJECT_TITLE_RE = re.compile(
    r"^\s*(?:(?:the|el|la|los|las)\s+)?(?:(?:acting\s+)?(?:director|secretary|commissioner"
    r"|administrator|head|chief|leadership|attorney general|secretari[oa]|directora?|titular"
    r"|comisionad[oa])\s+(?:of|de|del)\s+(?:(?:the|la|el|los|las)\s+)?)?$",
    re.IGNORECASE,
)
# A document's addressee is the agency most often its sentences' subject, or the one called on.
ADDRESSEE_AFTER_RE = re.compile(
    rf"\s+(?:also\s+|then\s+|now\s+)?(?:(?P<modal>{MODAL})|can|could|will|puede|pueden)\b",
    re.IGNORECASE,
)
# "X should" and "we urge X" address X; "X can" or "X will" may only describe it, so weigh less.
ADDRESSED_WEIGHT = 2
DESCRIBED_WEIGHT = 1
ADDRESSEE_BEFORE_RE = re.compile(
    r"\b(?:calls? (?:on|upon)|urges?|asks?|recommends? that|recommends?|request that"
    r"|instamos|pedimos|exhortamos|hacemos un llamado|recomendamos|solicitamos)"
    r"(?:\s+(?:a|al|a la|que))?\s+$",
    re.IGNORECASE,
)
# Imperatives whose object receives money, orders or partnership rather than doing the work:
# "Fund ORR's services", "Negotiate with Mexico". Their agencies support; someone else leads.
RECIPIENT_VERBS = frozenset(
    """fund appropriate finance allocate provide give grant award direct require instruct
    mandate order urge press call ask request encourage invite negotiate engage work partner
    consult coordinate collaborate cooperate support help assist hold oversee authorize allow
    empower pass enact reauthorize invest financiar financie asignar destinar
    exigir instar pedir solicitar negociar colaborar coordinar apoyar trabajar dotar otorgar
    trabaje negocie apoye""".split()
)
# Words that make the agency after them a partner or recipient: "work with ICE", "funds to ORR".
PARTNER_WORD_RE = re.compile(
    r"\b(?:with|to|from|through|alongside|among|between|via|con|junto a|entre|hacia)"
    r"(?:\s+(?:the|la|el|los|las))?\s*$",
    re.IGNORECASE,
)
# A subsection heading naming whom it addresses: "To Congress", "For the Department of State",
# "Recommendations to DHS", "Al Congreso", "Para el Gobierno de México".
HEADING_ADDRESSEE_RE = re.compile(
    r"^(?:recommendations?\s+|recomendaciones?\s+)?(?:to|for|para|al|a)\s+(?P<name>.+?)\s*[.:]?$",
    re.IGNORECASE,
)
# A country's short name in running text is usually a place ("shelters in Mexico", "returns
# to Mexico"); as the object of these verbs it is the government asked to act ("help Mexico
# register claims"), which supports.
SHORT_NAME_RECIPIENT_RE = re.compile(
    r"\b(?:help|helps|helping|urge|urges|encourage|encourages|ayudar a|instar a)\s*$",
    re.IGNORECASE,
)
# An agency named as where people are held or cared for ("deaths in ICE custody", "children
# in ORR care") is the setting of the ask, not a partner in it.
IN_AGENCY_CARE_RE = re.compile(
    r"\s+(?:custody|care|detention|facilities|facility|shelters?|centers?|centres?)\b",
    re.IGNORECASE,
)
IN_BEFORE_RE = re.compile(r"\b(?:in|into|under|from)\s+$", re.IGNORECASE)
LEADING_ARTICLE_RE = re.compile(r"^(?:the|el|la|los|las)\s+", re.IGNORECASE)
# A heading that names whom it addresses is short; a longer one is a sentence about something.
MAX_HEADING_ADDRESSEE_WORDS = 8

# Why a recommendation has the lead it has (see detect_owners), for review and reports.
BY_SUBJECT = "subject"
BY_OWN_WORK = "own work"
BY_NOTE = "note"
BY_PARENT = "parent"
BY_LEAD_IN = "lead-in"
BY_HEADING = "subsection heading"
BY_DOCUMENT = "document addressee"
BY_LIST = "listed"
# The flag for a recommendation whose lead could not be found: staff must choose one.
OWNER_NOT_FOUND = "owner not found"
# Asks this much alike (difflib's ratio on words) within one version may be one ask twice.
DUPLICATE_SIMILARITY = 0.85
# An ask shorter than this, or longer, is likely a fragment or several asks run together.
MIN_ASK_WORDS = 4
MAX_ASK_WORDS = 150


class DocumentImportError(ValueError):
    """The input cannot be imported; the message says why, for the person importing it."""


@dataclass(frozen=True)
class ParsedRecommendation:
    code: str
    text: str
    parent_code: str = ""
    section_title: str = ""
    title: str = ""
    note: str = ""
    # The sentence introducing a list of imperatives, naming whom they address.
    lead_in: str = ""
    # Given by a CSV only: agencies by acronym or name, themes by name.
    lead_agency: str = ""
    supporting_agencies: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    addressed_to: str = ""
    is_priority: bool = False
    # The CSV row, for error messages.
    row: int = 0


@dataclass(frozen=True)
class ParsedDocument:
    format: str
    recommendations: list[ParsedRecommendation]
    title: str = ""
    author: str = ""
    # Owners and themes set by staff reviewing a proposal (tracker.proposals), as a CSV lists.
    reviewed: bool = False

    @property
    def lists_owners(self):
        """Whether the source lists owners and themes, which then replace the stored ones."""
        return self.format == CSV or self.reviewed


@dataclass(frozen=True)
class Owners:
    lead: Agency | None  # None: no lead was found, and the recommendation is flagged
    supporting: tuple[Agency, ...] = ()
    found_by: str = ""  # which rule found the lead: BY_SUBJECT, BY_LEAD_IN, ...


@dataclass(frozen=True)
class ImportFlag:
    """Something the importer was unsure of about one recommendation, for staff to review."""

    code: str
    problem: str

    def __str__(self):
        return f"{self.code}: {self.problem}"


@dataclass(frozen=True)
class Moved:
    """A stored recommendation found under another code or parent in the new version."""

    recommendation: Recommendation
    old_code: str


@dataclass(frozen=True)
class Reworded:
    """A stored recommendation whose text the new version edits: "[-old-] {+new+}" words."""

    recommendation: Recommendation
    diff: str


@dataclass
class ImportResult:
    document: Document
    format: str
    document_created: bool = False
    dry_run: bool = False
    created: list[Recommendation] = field(default_factory=list)
    updated: list[Recommendation] = field(default_factory=list)
    unchanged: list[Recommendation] = field(default_factory=list)
    # Among those updated, the ones renumbered or moved, and the ones whose text changed.
    moved: list[Moved] = field(default_factory=list)
    reworded: list[Reworded] = field(default_factory=list)
    # Stored but absent from this version: withdrawn, kept with their history, not public.
    withdrawn: list[Recommendation] = field(default_factory=list)
    # Withdrawn by an earlier import and back in this version.
    restored: list[Recommendation] = field(default_factory=list)
    # Each imported recommendation's lead agency after the import, by code.
    leads: dict[str, Agency | None] = field(default_factory=dict)
    # What staff should review, e.g. recommendations whose owner was not found.
    flags: list[ImportFlag] = field(default_factory=list)
    # Every recommendation of the new version as it was saved (or would be, in a dry run):
    # see proposal_item.
    proposal: list[dict] = field(default_factory=list)
    # What the document's stored recommendations were before the import (stored_fingerprint).
    stored_fingerprint: str = ""

    def record(self, recommendation, outcome, *, lead):
        getattr(self, outcome).append(recommendation)
        self.leads[recommendation.code] = lead
        if lead is None:
            self.flags.append(ImportFlag(recommendation.code, OWNER_NOT_FOUND))

    def summary(self):
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.withdrawn)} withdrawn."
        )


# --- Reading -------------------------------------------------------------------------------


def read_source(path):
    """Return a file's bytes, refusing one over the size limit before reading it."""
    path = Path(path)
    if not path.is_file():
        raise DocumentImportError("No such file.")
    size = path.stat().st_size
    if size > reading.MAX_DOCUMENT_BYTES:
        raise DocumentImportError(
            f"This file is {size / 1024 / 1024:.1f} MB; documents are limited to "
            f"{reading.MAX_DOCUMENT_BYTES // (1024 * 1024)} MB."
        )
    return path.read_bytes()


def fetch_source(url):
    """Download a document through the fetch guard; return (bytes, file name, media type)."""
    try:
        return reading.fetch_document(url)
    except reading.UnreadableDocument as error:
        raise DocumentImportError(str(error)) from None


def decode_source(source: str | bytes, *, filename: str = "", content_type: str = "") -> str:
    """Return the document as text: PDF, Word, HTML and plain text become Markdown
    (tracker.reading); Markdown and CSV come as they are. Refuse binary, non-UTF-8, empty
    and oversized input."""
    if isinstance(source, bytes):
        try:
            source = reading.document_markdown(source, filename=filename, content_type=content_type)
        except reading.UnreadableDocument as error:
            raise DocumentImportError(str(error)) from None
    text = source.removeprefix("\ufeff")
    if "\x00" in text:  # text given as str: NUL is binary too, and PostgreSQL refuses it
        raise DocumentImportError("This is a binary file, not a text document.")
    if not text.strip():
        raise DocumentImportError("The document is empty.")
    return text


def detect_format(text, *, filename=""):
    """Return the format named by the file's extension, else the one the content looks like."""
    by_suffix = FORMAT_BY_SUFFIX.get(Path(filename).suffix.lower())
    if by_suffix:
        return by_suffix
    if looks_like_csv(text):
        return CSV
    if numbered_sections(split_blocks(text)):
        return MARKDOWN
    if any(map(is_first_step, split_op_ed(text)[2])):
        return OP_ED
    if find_asks(text):
        return MARKDOWN
    raise DocumentImportError(
        "Unrecognised document: expected Markdown with recommendations, an op-ed "
        'whose steps open with "First,", "Second,", ... or a CSV with code and text columns.'
    )


def looks_like_csv(text):
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error:  # e.g. a first line longer than the csv module's field limit
        return False
    return set(REQUIRED_CSV_COLUMNS) <= {normalise_column(name) for name in header}


def parse_document(text, *, fmt, document_code):
    if fmt == MARKDOWN:
        return parse_markdown(text, document_code=document_code)
    if fmt == OP_ED:
        return parse_op_ed(text, document_code=document_code)
    if fmt == CSV:
        return parse_csv(text)
    raise DocumentImportError(f"Unknown format {fmt!r}: use one of {', '.join(FORMATS)}.")


# --- Text helpers --------------------------------------------------------------------------


def clean_whitespace(text):
    return WHITESPACE_RE.sub(" ", text).strip()


def clean_markdown(text):
    """Return Markdown as plain text: links to their text, no emphasis, escapes, inline HTML
    or footnote markers."""
    return plain_text(text)


def split_sentences(text):
    return SENTENCE_END_RE.split(text.strip())


def short_title(text, *, limit=TITLE_MAX_LENGTH):
    """Return the text's first sentence as a short clause of at most `limit` chars: cut at the
    last clause boundary that fits, else between words with an ellipsis."""
    sentence = split_sentences(text)[0].rstrip(". ")
    if len(sentence) <= limit:
        return sentence
    boundaries = [m.start() for m in CLAUSE_BOUNDARY_RE.finditer(sentence) if m.start() <= limit]
    if boundaries and boundaries[-1] >= MIN_CLAUSE_LENGTH:
        return sentence[: boundaries[-1]].rstrip()
    cut = sentence[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",;:-\u2013 ") + "…"


def capitalise(text):
    return text[:1].upper() + text[1:]


def is_recommendation(text):
    return bool(RECOMMENDING_RE.search(text)) and len(text.split()) >= MIN_RECOMMENDATION_WORDS


def detect_themes(text):
    return [theme for theme, pattern in THEME_PATTERNS.items() if pattern.search(text)]


# --- Markdown ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: str
    text: str = ""
    level: int = 0  # a heading's: 1 to 6, or 0 for a bold line used as a heading


@dataclass(frozen=True)
class Section:
    number: str
    heading: str
    blocks: list[Block]


def parse_markdown(text, *, document_code):
    """Parse a Markdown document's recommendations, whatever its shape (see `structure`).

    A report whose numbered headings read "## 1. Title" may keep the line-based reading
    below, which also mends what a PDF's page breaks did to it (bold spans split across
    paragraphs), when it finds as many asks as the tree reader: the demo brief reads so.
    """
    blocks = split_blocks(text)
    sections = numbered_sections(blocks)
    asks = find_asks(text)
    # The sections end at the first unnumbered heading; when numbered headings follow it
    # ("### To Congress" inside a section), or a heading is a chapter ("## 1. Background"),
    # or plain bullets ask, the tree reader is the one that understands the document.
    numbered_headings = [b for b in blocks if b.kind == HEADING and is_numbered_heading(b)]
    if (
        sections
        and len(numbered_headings) == len(sections)
        and all(is_ask(plain_text(section.heading)) for section in sections)
    ):
        report = parse_numbered_report(blocks, document_code=document_code)
        if len(report.recommendations) >= len(asks):
            return report
    if not asks and sections:
        return parse_numbered_report(blocks, document_code=document_code)  # says what is wrong
    if not asks:
        raise DocumentImportError(
            "No recommendations were found in this Markdown: no numbered headings, no "
            '"Recommendations" section and no list or table of asks (sentences with "should", '
            '"must", "urge" or opening with a verb such as "Fund" or "Restore").'
        )
    recommendations = [
        ParsedRecommendation(
            code=f"{document_code}-{ask.code}",
            parent_code=f"{document_code}-{ask.parent_code}" if ask.parent_code else "",
            text=ask.text,
            note=ask.note,
            section_title=ask.section_title,
            lead_in=ask.lead_in,
        )
        for ask in asks
    ]
    return ParsedDocument(
        format=MARKDOWN, recommendations=recommendations, title=document_title(text)
    )


def parse_numbered_report(blocks, *, document_code):
    """Parse a report whose numbered sections hold its recommendations.

    1. Each numbered heading is a recommendation; the bold list items under it, and bold
       sentences that recommend something, are its sub-recommendations.
    2. The numbered part ends at a horizontal rule or at a later heading without a number.
    3. Text after an item's bold span is the item's note.
    """
    sections = numbered_sections(blocks)
    numbers = [section.number for section in sections]
    if repeated := sorted({number for number in numbers if numbers.count(number) > 1}):
        raise DocumentImportError(f"Section number(s) {', '.join(repeated)} appear twice.")
    recommendations = []
    for section in sections:
        recommendations += section_recommendations(
            section, code=f"{document_code}-{section.number}"
        )
    title = next((clean_markdown(b.text) for b in blocks if b.kind == HEADING and b.level == 1), "")
    return ParsedDocument(format=MARKDOWN, recommendations=recommendations, title=title)


def split_blocks(text):
    """Split Markdown into headings, list items, paragraphs and rules."""
    blocks = []
    open_block = None  # the paragraph or list item that a following line continues
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            open_block = None
            continue
        block = line_block(line)
        if block is None and open_block is not None:
            open_block = blocks[-1] = replace(open_block, text=f"{open_block.text} {line}")
            continue
        block = block or Block(PARAGRAPH, line)
        blocks.append(block)
        open_block = block if block.kind in (PARAGRAPH, BULLET) else None
    return join_continuations(blocks)


def line_block(line):
    """Return the block a line opens, or None for a plain line of text."""
    if RULE_RE.match(line):
        return Block(RULE)
    if match := HEADING_RE.match(line):
        return Block(HEADING, match["text"], level=len(match["hashes"]))
    if (match := BOLD_LINE_RE.match(line)) and SECTION_NUMBER_RE.match(
        clean_markdown(match["text"])
    ):
        return Block(HEADING, match["text"])
    if match := BULLET_RE.match(line):
        return Block(BULLET, line[match.end() :])
    return None


def join_continuations(blocks):
    """Join the paragraphs a page break split off: those opening in lowercase or continuing
    an unclosed bold span."""
    joined = []
    for block in blocks:
        previous = joined[-1] if joined else None
        if (
            block.kind == PARAGRAPH
            and previous is not None
            and previous.kind in (PARAGRAPH, BULLET)
            and (block.text[0].islower() or has_unclosed_bold(previous.text))
        ):
            joined[-1] = replace(previous, text=f"{previous.text} {block.text}")
        else:
            joined.append(block)
    return joined


def has_unclosed_bold(text):
    return text.count("**") % 2 == 1 or text.count("__") % 2 == 1


def is_numbered_heading(block):
    return bool(SECTION_NUMBER_RE.match(clean_markdown(block.text)))


def numbered_sections(blocks):
    sections = []
    for block in blocks:
        heading = block.kind == HEADING and SECTION_NUMBER_RE.match(clean_markdown(block.text))
        if heading:
            sections.append(Section(heading["number"], heading["text"], []))
        elif sections and block.kind in (HEADING, RULE):
            break
        elif sections:
            sections[-1].blocks.append(block)
    return sections


def section_recommendations(section, *, code):
    """Return the section's recommendation followed by its sub-recommendations."""
    top = ParsedRecommendation(code=code, text=section.heading, section_title=section.heading)
    children = []
    lead_in = ""
    for block in section.blocks:
        for text, note in block_recommendations(block):
            children.append(
                ParsedRecommendation(
                    code=f"{code}.{len(children) + 1}",
                    parent_code=code,
                    section_title=section.heading,
                    text=text,
                    note=note,
                    lead_in=lead_in if block.kind == BULLET else "",
                )
            )
        if block.kind == PARAGRAPH:
            lead_in = lead_in_sentence(block.text)
    return [top, *children]


def block_recommendations(block):
    """Return (text, note) for each recommendation a block makes."""
    if block.kind == BULLET and (match := BOLD_RE.match(block.text)):
        text = clean_markdown(match["text"])
        return [(text, clean_note(block.text[match.end() :]))] if text else []
    spans = [
        m for m in BOLD_RE.finditer(block.text) if is_recommendation(clean_markdown(m["text"]))
    ]
    if not spans:
        return []
    ends = [span.start() for span in spans[1:]] + [len(block.text)]
    return [
        (capitalise(clean_markdown(span["text"])), clean_note(block.text[span.end() : end]))
        for span, end in zip(spans, ends, strict=True)
    ]


def clean_note(markdown):
    """Return the text after a bold span as a note, without the punctuation closing the span."""
    return clean_markdown(markdown).lstrip(".,;: ")


def lead_in_sentence(paragraph):
    """Return the paragraph's last sentence if it introduces a list ("... should:")."""
    text = clean_markdown(paragraph)
    return split_sentences(text)[-1] if text.endswith(":") else ""


# --- Op-eds --------------------------------------------------------------------------------


def parse_op_ed(text, *, document_code):
    """Parse an op-ed whose recommendations are steps opening "First,", "Second,", ...

    Paragraphs after a step, up to the next, are its note; the last step keeps at most two,
    since an op-ed closes with a summary and the author's bio, which names the author.
    """
    title, bylines, paragraphs = split_op_ed(text)
    first = next((i for i, p in enumerate(paragraphs) if is_first_step(p)), None)
    if first is None:
        raise DocumentImportError(
            'No ordinal steps were found: an op-ed\'s first step must open with "First,".'
        )
    body = paragraphs[first:]
    # The bio closes the article: look for it only after the last step opens, so that a
    # sentence like "Kamala Harris has been asked..." between steps does not end them.
    last_step = max(i for i, p in enumerate(body) if step_match(p))
    bio_at = next((i for i, p in enumerate(body) if i > last_step and BIO_RE.match(p)), len(body))
    steps = group_steps(body[:bio_at])
    if len(steps) < 2:
        raise DocumentImportError('Only a "First," step was found; an op-ed needs two or more.')
    bio_author = BIO_RE.match(body[bio_at])["name"] if bio_at < len(body) else ""
    recommendations = [
        ParsedRecommendation(code=f"{document_code}-{number}", text=text, note="\n\n".join(notes))
        for number, (text, notes) in enumerate(steps, start=1)
    ]
    return ParsedDocument(
        format=OP_ED,
        recommendations=recommendations,
        title=title,
        author=bylines[0] if bylines else bio_author,
    )


def split_op_ed(text):
    """Return an op-ed's title (its first line), byline names and body paragraphs, leaving
    out site boilerplate and photo captions."""
    title, bylines, paragraphs = "", [], []
    for chunk in PARAGRAPH_BREAK_RE.split(text):
        lines = [line.strip() for line in chunk.splitlines()]
        lines = [line for line in lines if line and not BOILERPLATE_RE.match(line)]
        if any(PHOTO_CREDIT_RE.search(line) for line in lines):
            continue
        if lines and not title:
            title, *lines = lines
        bylines += [match["name"] for line in lines if (match := BYLINE_RE.match(line))]
        paragraph = " ".join(line for line in lines if not BYLINE_RE.match(line))
        if paragraph:
            paragraphs.append(clean_whitespace(paragraph))
    return title, bylines, paragraphs


def step_match(paragraph):
    """Match a step: an ordinal opening a sentence that asks, not a question ("First, why…?")."""
    match = STEP_RE.match(paragraph)
    if match is None or split_sentences(match["text"])[0].endswith("?"):
        return None
    return match


def is_first_step(paragraph):
    match = step_match(paragraph)
    return match is not None and match["ordinal"] == "First"


def group_steps(paragraphs):
    """Return (step text, note paragraphs) for each step, from the first paragraph on."""
    steps = []
    closed = False
    for paragraph in paragraphs:
        match = step_match(paragraph)
        if match and not closed:
            steps.append((*split_step(capitalise(match["text"])), []))
            closed = match["ordinal"] in LAST_STEP_ORDINALS
        else:
            steps[-1][2].append(paragraph)
    del steps[-1][2][MAX_CLOSING_NOTE_PARAGRAPHS:]
    return [
        (text, [explanation, *notes] if explanation else notes)
        for text, explanation, notes in steps
    ]


def split_step(text):
    """Return (ask, explanation): a step's sentences up to the last that asks, and the
    sentences after it, which only explain ("... When it ran, crossings fell.")."""
    sentences = split_sentences(text)
    asking = [i for i, sentence in enumerate(sentences) if is_ask(sentence)]
    if not asking:
        return text, ""
    last = asking[-1] + 1
    return " ".join(sentences[:last]), " ".join(sentences[last:])


# --- CSV -----------------------------------------------------------------------------------


# A spreadsheet runs a cell that opens with one of these as a formula (CSV injection).
FORMULA_TRIGGER_RE = re.compile(r"^'*[=+\-@\t\r]")
# What escape_formula made of such a cell: one more apostrophe, which spreadsheets show as
# "this is text" and hide.
ESCAPED_FORMULA_RE = re.compile(r"^'+[=+\-@\t\r]")


def escape_formula(cell):
    """Return `cell` as a spreadsheet will show but never run: an apostrophe before a formula.

    Cells already opening with apostrophes before a trigger get one more, so that
    unescape_formula() gives back exactly what was written.
    """
    return f"'{cell}" if FORMULA_TRIGGER_RE.match(cell) else cell


def unescape_formula(cell):
    """Undo escape_formula(): drop the apostrophe it put before a formula trigger."""
    return cell[1:] if ESCAPED_FORMULA_RE.match(cell) else cell


def normalise_column(name):
    return "_".join(name.lower().split())


def split_list(cell):
    return tuple(item.strip() for item in cell.split(CSV_LIST_SEPARATOR) if item.strip())


def parse_csv(text):
    """Parse a CSV of recommendations with full codes, one row each, parents first."""
    try:
        header, *rows = list(csv.reader(io.StringIO(text))) or [[]]  # no lines: no header
    except csv.Error as error:
        raise DocumentImportError(f"Unreadable CSV: {error}.") from None
    columns = [normalise_column(name) for name in header]
    if missing := [name for name in REQUIRED_CSV_COLUMNS if name not in columns]:
        raise DocumentImportError(f"The CSV lacks the required column(s): {', '.join(missing)}.")
    if unknown := [name for name in columns if name not in CSV_COLUMNS]:
        raise DocumentImportError(
            f"Unknown CSV column(s): {', '.join(unknown)}. Known: {', '.join(CSV_COLUMNS)}."
        )
    recommendations = [
        csv_recommendation(dict(zip(columns, cells, strict=False)), row=number)
        for number, cells in enumerate(rows, start=2)
        if any(cell.strip() for cell in cells)
    ]
    if not recommendations:
        raise DocumentImportError("The CSV has a header but no recommendations.")
    check_csv_codes(recommendations)
    return ParsedDocument(format=CSV, recommendations=recommendations)


def csv_recommendation(cells, *, row):
    values = {column: unescape_formula((cells.get(column) or "").strip()) for column in CSV_COLUMNS}
    if not values["code"] or not values["text"]:
        raise DocumentImportError(f"Row {row}: code and text are required.")
    if values["addressed_to"] not in ("", *Recommendation.AddressedTo.values):
        raise DocumentImportError(
            f"Row {row}: addressed_to must be one of "
            f"{', '.join(Recommendation.AddressedTo.values)}, not {values['addressed_to']!r}."
        )
    priority = CSV_PRIORITY_VALUES.get(values["priority"].lower())
    if priority is None:
        raise DocumentImportError(
            f"Row {row}: priority must be yes or no, not {values['priority']!r}."
        )
    return ParsedRecommendation(
        code=values["code"],
        parent_code=values["parent_code"],
        section_title=values["section"],
        title=values["title"],
        text=values["text"],
        note=values["note"],
        lead_agency=values["lead_agency"],
        supporting_agencies=split_list(values["supporting_agencies"]),
        themes=split_list(values["themes"]),
        addressed_to=values["addressed_to"],
        is_priority=priority,
        row=row,
    )


def check_csv_codes(recommendations):
    """Refuse repeated codes and parents that are unknown or listed after their children."""
    rows_by_code = {}
    all_codes = {recommendation.code for recommendation in recommendations}
    for recommendation in recommendations:
        code, parent_code, row = recommendation.code, recommendation.parent_code, recommendation.row
        if code in rows_by_code:
            raise DocumentImportError(f"Row {row}: code {code} repeats row {rows_by_code[code]}.")
        if parent_code and parent_code not in all_codes:
            raise DocumentImportError(f"Row {row}: unknown parent code {parent_code}.")
        if parent_code and parent_code not in rows_by_code:
            raise DocumentImportError(
                f"Row {row}: parent {parent_code} must come before its children."
            )
        rows_by_code[code] = row


def export_csv(recommendations: Iterable[Recommendation], *, drafts_visible=True) -> str:
    """Return the recommendations as CSV in the format `import_document()` reads back.

    Cells that a spreadsheet would run as a formula are escaped (see escape_formula); the
    importer undoes it, so export then import gives back the same texts.

    Without `drafts_visible`, a parent the public cannot see (a draft) is left out.
    """
    recommendations = list(recommendations)
    prefetch_related_objects(recommendations, "parent", "ownerships__agency", "themes")
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(CSV_COLUMNS)
    for recommendation in recommendations:
        ownerships = recommendation.ownerships.all()
        lead = [o.agency for o in ownerships if o.role == Ownership.Role.LEAD]
        supporting = [o.agency for o in ownerships if o.role == Ownership.Role.SUPPORTING]
        cells = [
            recommendation.code,
            parent_code(recommendation, drafts_visible=drafts_visible),
            recommendation.section_title,
            recommendation.title,
            recommendation.text,
            recommendation.note,
            "".join(agency_label(agency) for agency in lead),
            f"{CSV_LIST_SEPARATOR} ".join(map(agency_label, supporting)),
            f"{CSV_LIST_SEPARATOR} ".join(theme.name for theme in recommendation.themes.all()),
            recommendation.addressed_to,
            "yes" if recommendation.is_priority else "",
        ]
        writer.writerow(map(escape_formula, cells))
    return output.getvalue()


def parent_code(recommendation, *, drafts_visible):
    parent = recommendation.parent
    if parent is None or not (drafts_visible or parent.is_public):
        return ""
    return parent.code


def agency_label(agency):
    return agency.acronym or agency.name


# --- Owners --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mention:
    start: int
    agency: Agency
    end: int = 0


class AgencyIndex:
    """The agency directory, compiled once per import to find agencies in text or by name.

    Acronyms and capitalised one-word names ("Pentagon") match only as written, other names
    and aliases in any case, longest first. SHORT_NAMES ("State", "Mexico") are found only
    where a whole name is expected: `find()`, headings and lead-ins.
    """

    def __init__(self, agencies):
        self.by_pk = {agency.pk: agency for agency in agencies}
        self.by_acronym = {a.acronym: a for a in self.by_pk.values() if a.acronym}
        terms = [
            (term, agency)
            for agency in self.by_pk.values()
            for term in {agency.name, agency.acronym, *agency.alias_list} - {""}
        ]
        # An alias opening with an article is also written without it: Spanish contracts
        # "a el" and "de el" ("Instamos al gobierno de Estados Unidos"), English drops it
        # after a possessive or a number.
        known = {term.casefold() for term, _ in terms}
        terms += [
            (bare, agency)
            for term, agency in terms
            if (bare := LEADING_ARTICLE_RE.sub("", term)) != term
            and " " in bare
            and bare.casefold() not in known
        ]
        self.by_name = {term.casefold(): agency for term, agency in terms}
        self.by_short_name = {
            short.casefold(): agency
            for short, key in SHORT_NAMES.items()
            if (agency := self.by_acronym.get(key) or self.by_name.get(key.casefold()))
        }
        terms += [(term, None) for term in NOT_AGENCY_TERMS]
        terms.sort(key=lambda item: -len(item[0]))
        self.term_agencies = [agency for _, agency in terms]
        self.matcher = TermMatcher([term for term, _ in terms], acronyms=self.by_acronym)
        short_names = sorted(SHORT_NAMES, key=len, reverse=True)
        self.short_agencies = [self.by_short_name.get(name.casefold()) for name in short_names]
        self.short_matcher = TermMatcher(short_names, acronyms=SHORT_NAMES)

    def find(self, name):
        """Return the agency with this acronym, or this name, alias or short name in any case."""
        name = clean_whitespace(name)
        key = name.casefold()
        return (
            self.by_acronym.get(name)
            or self.by_name.get(key)
            or self.by_short_name.get(key)
            or self.by_name.get(LEADING_ARTICLE_RE.sub("", name).casefold())
            or self.by_short_name.get(LEADING_ARTICLE_RE.sub("", name).casefold())
        )

    def mentions(self, text):
        found = [
            Mention(start, self.term_agencies[position], end)
            for start, end, position in self.matcher.finditer(text)
        ]
        return [mention for mention in found if mention.agency is not None]

    def short_mentions(self, text):
        found = [
            Mention(start, self.short_agencies[position], end)
            for start, end, position in self.short_matcher.finditer(text)
        ]
        return [mention for mention in found if mention.agency is not None]

    def agencies_in(self, text):
        """Return the agencies the text names, in order, without those whose descendant it
        also names ("the Department of State Bureau of ... (PRM)" is PRM alone)."""
        named = list(dict.fromkeys(mention.agency for mention in self.mentions(text)))
        ancestors = {ancestor for agency in named for ancestor in self.ancestors(agency)}
        return [agency for agency in named if agency not in ancestors]

    def ancestors(self, agency):
        while agency.parent_id is not None and agency.parent_id in self.by_pk:
            agency = self.by_pk[agency.parent_id]
            yield agency


# A word, as the matcher looks terms up by their first one.
WORD_RE = re.compile(r"\w+")


class TermMatcher:
    """Find terms in text, leftmost first and the longest at a position, as one regular
    expression of alternatives would, but fast: a term is tried only where its first word
    stands, so a long report is scanned once instead of once per term."""

    def __init__(self, terms, *, acronyms):
        self.candidates = {}  # first word, casefolded: [(term's position in `terms`, pattern)]
        for position, term in sorted(enumerate(terms), key=lambda item: -len(item[1])):
            first = WORD_RE.search(term)
            if first is None:
                continue
            pattern = re.compile(term_pattern(term, case_sensitive=is_written_case(term, acronyms)))
            self.candidates.setdefault(first[0].casefold(), []).append((position, pattern))

    def finditer(self, text):
        """Yield (start, end, position of the term) for each term found."""
        end = 0
        for word in WORD_RE.finditer(text):
            if word.start() < end:
                continue
            for position, pattern in self.candidates.get(word[0].casefold(), ()):
                if match := pattern.match(text, word.start()):
                    yield match.start(), match.end(), position
                    end = match.end()
                    break


def is_written_case(term, acronyms):
    """Whether a term matches only as written: acronyms and capitalised single words, which
    in other cases are ordinary words ("ice", "pentagon")."""
    return term in acronyms or (" " not in term and term != term.lower())


def term_pattern(term, *, case_sensitive):
    words = (re.escape(word).replace("'", "['\u2019]") for word in term.split())
    body = r"\s+".join(words)
    return rf"(?<!\w){body if case_sensitive else f'(?i:{body})'}(?!\w)"


def detect_owners(parsed, *, index, default_lead, ancestors=()):
    """Return who leads a recommendation and who supports it, and which rule found the lead.

    1. An agency that is the grammatical subject leads: "The Director of ICE should ...",
       "USCIS should ...", "La COMAR debe ...".
    2. An imperative naming one agency whose own work changes is led by it: "Double the
       number of immigration judges at EOIR". Not when the agency receives money, orders or
       partnership ("Fund ORR's services", "Negotiate with Mexico"): see RECIPIENT_VERBS.
    3. Otherwise, for a title ask ("Invest in host countries."), the subject of its note's
       first recommending sentence ("The State Department should commit ...") leads, and
       the other agencies that sentence names support.
    4. Otherwise the lead its nearest ancestor found by rules 1 to 3 (`ancestors`, nearest
       first) leads: a sub-bullet under "PRM should reopen processing" is PRM's.
    5. Otherwise whom the lead-in addresses leads ("KIND calls on Congress to:"), else whom the
       subsection heading addresses ("To the Department of State").
    6. Otherwise the document's addressee (`default_lead`) leads.
    7. Otherwise there is no lead: the import flags the recommendation "owner not found".
    Every other agency the text names supports.
    """
    text = parsed.text
    note_sentence = recommending_note_sentence(parsed, index=index)
    lead, found_by = None, ""
    for rule, find_lead in (
        (BY_SUBJECT, lambda: subject_agency(text, index=index)),
        (BY_OWN_WORK, lambda: own_work_agency(text, index=index)),
        (BY_NOTE, lambda: subject_agency(note_sentence, index=index) if note_sentence else None),
        (BY_PARENT, lambda: inherited_lead(ancestors, index=index)),
        (BY_LEAD_IN, lambda: lead_in_addressee(parsed.lead_in, index=index)),
        (BY_HEADING, lambda: heading_addressee(parsed.section_title, index=index)),
        (BY_DOCUMENT, lambda: default_lead),
    ):
        lead = find_lead()
        if lead is not None:
            found_by = rule
            break
    named = dict.fromkeys(
        index.agencies_in(text)
        + index.agencies_in(note_sentence)
        + recipient_short_names(text, index=index)
    )
    supporting = tuple(
        agency
        for agency in named
        if agency != lead
        and not is_leads_own_staff(agency, lead, text, index=index)
        and not is_only_a_setting(agency, text, index=index)
    )
    return Owners(lead, supporting, found_by)


def is_only_a_setting(agency, text, *, index):
    """Whether the text names the agency only as where people are held: "in ICE custody"."""
    mentions = [m for m in index.mentions(text) if m.agency == agency]
    return bool(mentions) and all(
        IN_BEFORE_RE.search(text[: m.start]) and IN_AGENCY_CARE_RE.match(text, m.end)
        for m in mentions
    )


def is_leads_own_staff(agency, lead, text, *, index):
    """Whether the text names a part of the lead only by what its people are: "The
    Department of Justice should hire immigration judges" asks nothing of EOIR as such."""
    if lead is None or lead not in index.ancestors(agency):
        return False
    spans = [text[m.start : m.end] for m in index.mentions(text) if m.agency == agency]
    return bool(spans) and all(span.islower() for span in spans)


def recipient_short_names(text, *, index):
    """Return the governments a text names by short name as asked to act: "help Mexico"."""
    return [
        mention.agency
        for mention in index.short_mentions(text)
        if SHORT_NAME_RECIPIENT_RE.search(text[: mention.start])
    ]


def recommending_note_sentence(parsed, *, index):
    """Return the sentence of a title ask's note that says who should act, or "".

    Only for an ask that has no subject and names no agency ("Invest in host countries."):
    its note's first sentence with "should", "must" or "debe" is the ask written out in
    full. A note under an ask naming its agency only explains it."""
    if (
        not parsed.note
        or SUBJECT_VERB_RE.search(split_sentences(parsed.text)[0])
        or index.mentions(parsed.text)
    ):
        return ""
    for sentence in split_sentences(clean_markdown(parsed.note)):
        if SUBJECT_VERB_RE.search(sentence):
            return sentence
    return ""


def inherited_lead(ancestors, *, index):
    """Return the lead the nearest ancestor names itself (its subject, own work or note)."""
    for ancestor in ancestors:
        owners = detect_owners(ancestor, index=index, default_lead=None)
        if owners.found_by in (BY_SUBJECT, BY_OWN_WORK, BY_NOTE):
            return owners.lead
    return None


def subject_agency(text, *, index):
    """Return the agency that is the subject of the text's first sentence, if one is."""
    sentence = split_sentences(text)[0]
    verb = SUBJECT_VERB_RE.search(sentence)
    if verb is None:
        return None
    subject = sentence[: verb.start()]
    mentions = index.mentions(subject)
    if mentions and SUBJECT_TITLE_RE.match(f"{clean_whitespace(subject[: mentions[0].start])} "):
        return mentions[0].agency
    return None


def own_work_agency(text, *, index):
    """Return the one agency an imperative names, when the change is to its own work.

    Not when the sentence has a subject of its own, names several agencies, opens with a verb
    that makes the agency a recipient or partner, or names it after "with", "to", "from".
    """
    sentence = split_sentences(text)[0]
    if SUBJECT_VERB_RE.search(sentence):
        return None
    named = index.agencies_in(text)
    if len(named) != 1:
        return None
    verb = sentence.split(maxsplit=1)[0].casefold().strip(",;:")
    if verb in RECIPIENT_VERBS:
        return None
    agency = named[0]
    for mention in index.mentions(text):
        if mention.agency == agency and PARTNER_WORD_RE.search(text[: mention.start]):
            return None
    return agency


def lead_in_addressee(lead_in, *, index):
    """Return whom a lead-in addresses: the last agency it names ("The administration should
    request that Congress:" is Congress), or a short name ("We urge Mexico to:")."""
    if not lead_in:
        return None
    return last_agency(lead_in, index=index) or last_short_name(lead_in, index=index)


def heading_addressee(heading, *, index):
    """Return whom a subsection heading addresses: "To Congress", "For the Department of
    State", "Al Gobierno de México"; None for a heading that is not addressed."""
    match = HEADING_ADDRESSEE_RE.match(clean_whitespace(heading or ""))
    if match is None or len(match["name"].split()) > MAX_HEADING_ADDRESSEE_WORDS:
        return None
    if agency := index.find(match["name"]):
        return agency
    # Or the heading opens with an agency's full name: "To the Department of State and USAID".
    mentions = index.mentions(LEADING_ARTICLE_RE.sub("", match["name"]))
    return mentions[0].agency if mentions and mentions[0].start == 0 else None


def last_agency(text, *, index):
    mentions = index.mentions(text)
    return mentions[-1].agency if mentions else None


def last_short_name(text, *, index):
    mentions = index.short_mentions(text)
    return mentions[-1].agency if mentions else None


def detect_addressee(text, *, index):
    """Return the agency a whole document addresses, or None if it names none as such.

    It is the agency most often the subject of a recommending verb ("The administration
    should") or called on ("we urge Congress"), then of "can" or "will" ("the Biden-Harris
    administration can take"). None when two agencies tie for most: a document asking as much
    of each addresses no one agency, and its asks must name their own.
    """
    text = clean_markdown(text)
    counts = {}
    for mention in index.mentions(text):
        verb = ADDRESSEE_AFTER_RE.match(text, mention.end)
        called_on = ADDRESSEE_BEFORE_RE.search(text[max(0, mention.start - 40) : mention.start])
        if (verb and verb["modal"]) or called_on:
            weight = ADDRESSED_WEIGHT
        elif verb:
            weight = DESCRIBED_WEIGHT
        else:
            continue
        counts[mention.agency] = counts.get(mention.agency, 0) + weight
    ranked = sorted(counts.values(), reverse=True)
    if not ranked or (len(ranked) > 1 and ranked[0] == ranked[1]):
        # Several agencies addressed as often: each ask names its own, none is the document's.
        return None
    return max(counts, key=counts.get)


def listed_owners(parsed, *, index, default_lead):
    """Return the owners a CSV row lists; an agency missing from the directory is an error."""

    def find(name):
        agency = index.find(name)
        if agency is None:
            where = f"Row {parsed.row} ({parsed.code})" if parsed.row else parsed.code
            raise DocumentImportError(
                f"{where}: unknown agency {name!r}; add it to the agency directory first."
            )
        return agency

    lead = find(parsed.lead_agency) if parsed.lead_agency else default_lead
    supporting = dict.fromkeys(map(find, parsed.supporting_agencies))
    found_by = BY_LIST if parsed.lead_agency else BY_DOCUMENT if lead else ""
    return Owners(lead, tuple(agency for agency in supporting if agency != lead), found_by)


def find_addressee(name, *, index):
    """Return the agency an operator named as a document's addressee (`--addressee`)."""
    agency = index.find(name)
    if agency is None:
        raise DocumentImportError(
            f"Unknown addressee {name!r}: give an agency's acronym or name from the agency "
            "directory, e.g. WH, Congress, DHS."
        )
    return agency


def addressed_to_for(lead):
    if lead is None:  # flagged for review; the field keeps its default until staff choose
        return Recommendation._meta.get_field("addressed_to").default
    if lead.acronym == WHITE_HOUSE:
        return Recommendation.AddressedTo.ADMINISTRATION
    if lead.acronym == CONGRESS:
        return Recommendation.AddressedTo.CONGRESS
    if lead.kind == Agency.Kind.PARTNER:
        return Recommendation.AddressedTo.PARTNER
    return Recommendation.AddressedTo.AGENCY


# --- Saving --------------------------------------------------------------------------------


def default_document_code(*, publisher="", publisher_acronym="", published_on=None):
    """Return e.g. "WRC-2024" from the publisher's acronym (or initials) and the year."""
    prefix = publisher_acronym or "".join(
        word[0] for word in publisher.split() if word[0].isupper() and word != "The"
    )
    if not prefix or published_on is None:
        raise DocumentImportError(
            "Give a document code, or a publisher and a publication date to make one from."
        )
    return f"{prefix}-{published_on.year}"


def import_document(
    source: str | bytes,
    *,
    code: str,
    fmt: str | None = None,
    filename: str = "",
    content_type: str = "",
    **options,
) -> ImportResult:
    """Read and parse a document, then save it (save_import, which `options` are for).

    Input that cannot be imported raises DocumentImportError before anything is written.
    """
    text = decode_source(source, filename=filename, content_type=content_type)
    fmt = fmt or detect_format(text, filename=filename)
    parsed = parse_document(text, fmt=fmt, document_code=code)
    return save_import(parsed, code=code, addressee_text=text, **options)


def save_import(
    parsed: ParsedDocument,
    *,
    code: str,
    publisher: Publisher | str | None = None,
    publisher_acronym: str = "",
    title: str | None = None,
    kind: str | None = None,
    published_on: datetime.date | None = None,
    author: str = "",
    url: str = "",
    addressee: Agency | str | None = None,
    addressee_text: str = "",
    publish_new: bool = True,
    dry_run: bool = False,
    matched: dict[str, int] | None = None,
    expected_fingerprint: str | None = None,
    language: str = "en",
) -> ImportResult:
    """Save a parsed document and its recommendations; return what was created or changed.

    1. The document is found by code, or created; the metadata given replaces its own, and
       the title and author found in the text fill only blanks. Its addressee (an agency, or
       its acronym or name) is the one given, else the stored one, else the agency
       `addressee_text` most often addresses (detect_addressee), else none.
    2. Each recommendation of the new version is matched to the stored one it continues by
       its text, not its code (match_recommendations), or as staff confirmed it (`matched`:
       {code: stored pk}): a match is updated in place, taking the new code, parent, position
       and text, so its history, evidence and owners stay with the ask; an unmatched one is
       created, published unless `publish_new` is false. Owners and themes found in Markdown
       or an op-ed are applied only where staff have set none; those a CSV or a review lists
       replace them.
    3. Stored recommendations the new version no longer has are withdrawn: kept with their
       history, hidden from the public (RecommendationQuerySet.public).
    4. All of it happens in one transaction; a dry run rolls it back after the same work, so
       its report is exact. With `expected_fingerprint`, the stored recommendations must be
       as they were when that was taken (stored_fingerprint), or nothing is written.
    5. The texts go into the columns of `language`, the edition's (a new document's original
       language), whatever language the staff member's request is in.
    """
    with translation.override(language), transaction.atomic():
        ensure_agency_directory()
        index = AgencyIndex(Agency.objects.all())
        if isinstance(addressee, str):
            addressee = find_addressee(addressee, index=index) if addressee.strip() else None
        document, document_created = save_document(
            parsed,
            code=code,
            publisher=publisher,
            publisher_acronym=publisher_acronym,
            addressee=addressee,
            default_addressee=(
                None if addressee else detect_addressee(addressee_text, index=index)
            ),
            title=title,
            kind=kind,
            published_on=published_on,
            author=author,
            url=url,
            original_language=language,
        )
        result = ImportResult(
            document=document,
            format=parsed.format,
            document_created=document_created,
            dry_run=dry_run,
        )
        # Locked, so two imports of one document cannot interleave their matching.
        stored = list(document.recommendations.select_for_update().order_by("position", "pk"))
        result.stored_fingerprint = stored_fingerprint(stored)
        if expected_fingerprint is not None and result.stored_fingerprint != expected_fingerprint:
            raise DocumentImportError(
                f"The recommendations of {code} changed after this proposal was made (another "
                "import or an edit); import the document again to review a fresh proposal."
            )
        before = {recommendation.pk: Snapshot.of(recommendation) for recommendation in stored}
        if matched is None:
            matches = match_recommendations(parsed.recommendations, stored)
        else:
            by_pk = {recommendation.pk: recommendation for recommendation in stored}
            matches = {code: by_pk[pk] for code, pk in matched.items() if pk in by_pk}
        matched_pks = {recommendation.pk for recommendation in matches.values()}
        unmatched = [
            recommendation for recommendation in stored if recommendation.pk not in matched_pks
        ]
        move_codes(
            stored,
            {matches[code].pk: code for code in matches},
            unmatched=unmatched,
            taken={item.code for item in parsed.recommendations},
        )
        saved = {}
        by_code = {item.code: item for item in parsed.recommendations}
        for position, item in enumerate(parsed.recommendations, start=1):
            recommendation, outcome, lead = save_recommendation(
                document,
                item,
                stored=matches.get(item.code),
                parent=saved.get(item.parent_code),
                position=position,
                index=index,
                ancestors=parsed_ancestors(item, by_code),
                lists_owners=parsed.lists_owners,
                publish_new=publish_new,
            )
            saved[item.code] = recommendation
            result.record(recommendation, outcome, lead=lead)
            if recommendation.pk in before:
                record_identity(result, recommendation, before=before)
        result.flags += doubt_flags(parsed.recommendations)
        keep_former_codes(result.moved)
        result.withdrawn = withdraw(unmatched)
        result.proposal = describe_proposal(result, list(saved.values()), before=before)
        if dry_run:
            transaction.set_rollback(True)
    return result


def stored_fingerprint(recommendations):
    """A digest of what an import matches against and replaces: each stored recommendation's
    code, parent, text, withdrawal, owners and themes. Equal digests, same starting point."""
    prefetch_related_objects(recommendations, "ownerships", "themes")
    state = sorted(
        (
            recommendation.pk,
            recommendation.code,
            recommendation.parent_id,
            recommendation.text,
            recommendation.withdrawn_at is not None,
            sorted((o.agency_id, o.role) for o in recommendation.ownerships.all()),
            sorted(theme.pk for theme in recommendation.themes.all()),
        )
        for recommendation in recommendations
    )
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()


def doubt_flags(recommendations):
    """Flag asks that may be wrong: near-duplicates within the version, fragments and
    run-ons, questions (an ask is not a question). A parent may be a short heading."""
    flags = []
    words = [match_words(item.text) for item in recommendations]
    parents = {item.parent_code for item in recommendations}
    for number, item in enumerate(recommendations):
        count = len(words[number])
        if count < MIN_ASK_WORDS and item.code not in parents:
            flags.append(ImportFlag(item.code, "low confidence: very short for a recommendation"))
        elif count > MAX_ASK_WORDS:
            flags.append(ImportFlag(item.code, "low confidence: long, may hold several asks"))
        if item.text.rstrip().endswith("?"):
            flags.append(ImportFlag(item.code, "low confidence: reads as a question"))
        matcher = SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(words[number])
        for earlier in range(number):
            matcher.set_seq1(words[earlier])
            if (
                matcher.real_quick_ratio() >= DUPLICATE_SIMILARITY
                and matcher.quick_ratio() >= DUPLICATE_SIMILARITY
                and matcher.ratio() >= DUPLICATE_SIMILARITY
            ):
                duplicate = recommendations[earlier].code
                flags.append(ImportFlag(item.code, f"possible duplicate of {duplicate}"))
                break
    return flags


def describe_proposal(result, recommendations, *, before):
    """Return each recommendation of the import as plain data, read inside its transaction so
    a dry run describes exactly what it would have saved; `before` ({pk: Snapshot}) is what
    the stored ones were."""
    prefetch_related_objects(recommendations, "parent", "ownerships__agency", "themes")
    outcomes = {
        recommendation.pk: outcome
        for outcome in ("created", "updated", "unchanged")
        for recommendation in getattr(result, outcome)
    }
    flags = {}
    for flag in result.flags:
        flags.setdefault(flag.code, []).append(flag.problem)
    return [
        proposal_item(
            recommendation,
            outcome=outcomes[recommendation.pk],
            flags=flags,
            before=before.get(recommendation.pk),
        )
        for recommendation in recommendations
    ]


def proposal_item(recommendation, *, outcome, flags, before=None):
    """One recommendation of an import as plain data; `stored` is the stored recommendation
    it continues, as it was (None for a new one)."""
    ownerships = recommendation.ownerships.all()
    return {
        "code": recommendation.code,
        "parent": recommendation.parent.code if recommendation.parent_id else None,
        "outcome": outcome,
        "section": recommendation.section_title,
        "title": recommendation.title,
        "text": recommendation.text,
        "note": recommendation.note,
        "lead": next(
            (agency_label(o.agency) for o in ownerships if o.role == Ownership.Role.LEAD), None
        ),
        "supporting": [
            agency_label(o.agency) for o in ownerships if o.role == Ownership.Role.SUPPORTING
        ],
        "themes": sorted(theme.name for theme in recommendation.themes.all()),
        "addressed_to": recommendation.addressed_to,
        "is_priority": recommendation.is_priority,
        "flags": flags.get(recommendation.code, []),
        "stored": None
        if before is None
        else {
            "pk": recommendation.pk,
            "code": before.code,
            "text": before.text,
            "withdrawn": before.withdrawn,
        },
    }


def save_document(
    parsed, *, code, publisher, publisher_acronym, addressee, default_addressee, **metadata
):
    """Return the document with this code, created or with its metadata brought up to date."""
    document = Document.objects.filter(code=code).first() or Document(code=code)
    created = document._state.adding
    original_language = metadata.pop("original_language", "en")
    values = {name: value for name, value in metadata.items() if value}
    if created:
        values["original_language"] = original_language
    for name in ("title", "author"):
        if name not in values and not getattr(document, name) and getattr(parsed, name):
            values[name] = getattr(parsed, name)
    if created and "kind" not in values:
        values["kind"] = Document.Kind.OP_ED if parsed.format == OP_ED else Document.Kind.REPORT
    if publisher:
        values["publisher_id"] = get_publisher(publisher, acronym=publisher_acronym).pk
    # The addressee given replaces the stored one; the detected one only fills a blank.
    new_addressee = addressee or (default_addressee if document.addressee_id is None else None)
    if new_addressee:
        values["addressee_id"] = new_addressee.pk
    if document.publisher_id is None and "publisher_id" not in values:
        raise DocumentImportError(f"Document {code} is new: give its publisher.")
    if not (document.title or values.get("title")):
        raise DocumentImportError(f"Document {code} has no title to detect: give one.")
    if assign(document, values) or created:
        validate(document, label=f"Document {code}")
        document.save()
    return document, created


def get_publisher(publisher, *, acronym):
    if isinstance(publisher, Publisher):
        return publisher
    found, _ = Publisher.objects.get_or_create(name=publisher, defaults={"acronym": acronym})
    return found


def parsed_ancestors(item, by_code):
    """Return the parsed asks an ask sits under, nearest first."""
    ancestors = []
    while (item := by_code.get(item.parent_code)) is not None and item not in ancestors:
        ancestors.append(item)
    return ancestors


def save_recommendation(
    document, parsed, *, stored, parent, position, index, ancestors, lists_owners, publish_new
):
    """Create a recommendation, or update the `stored` one this parsed one continues; return
    it, its outcome and its lead.

    The outcome names the ImportResult list it belongs in. Owners and themes the source lists
    (`lists_owners`) replace the stored ones; detected ones only fill a blank. A withdrawn
    recommendation that is back is restored.
    """
    recommendation = stored
    created = recommendation is None
    if created:
        recommendation = Recommendation(
            document=document, code=parsed.code, is_published=publish_new
        )
    fields = {
        "code": parsed.code,
        "withdrawn_at": None,
        "parent_id": parent.pk if parent else None,
        "position": position,
        "section_title": parsed.section_title,
        "title": parsed.title or short_title(parsed.text),
        "text": parsed.text,
        "note": parsed.note,
    }
    apply_owners = lists_owners or created or not recommendation.ownerships.exists()
    if apply_owners:
        if lists_owners:
            owners = listed_owners(parsed, index=index, default_lead=document.addressee)
        else:
            owners = detect_owners(
                parsed, index=index, default_lead=document.addressee, ancestors=ancestors
            )
        fields["addressed_to"] = parsed.addressed_to or addressed_to_for(owners.lead)
    if lists_owners:
        fields["is_priority"] = parsed.is_priority
    changed = bool(assign(recommendation, fields))
    if created or changed:
        validate(recommendation, label=parsed.code)
        recommendation.save()
    if apply_owners:
        changed |= set_owners(recommendation, owners)
    if lists_owners or created or not recommendation.themes.exists():
        names = parsed.themes if lists_owners else detect_themes(parsed.text)
        changed |= set_themes(recommendation, names)
    lead = owners.lead if apply_owners else current_lead(recommendation)
    outcome = "created" if created else "updated" if changed else "unchanged"
    return recommendation, outcome, lead


# --- Identity across versions --------------------------------------------------------------

# A stored recommendation continues as an edited one when their words are at least this
# similar (difflib's ratio on words: 1.0 the same words, 0.67 one half of a split ask).
MIN_SIMILARITY = 0.6
# A short ask turns into another with one word ("Work with Mexico" / "Work with Canada"):
# when either text has at most SHORT_ASK_WORDS words, the bar is higher.
SHORT_ASK_WORDS = 6
MIN_SHORT_SIMILARITY = 0.8
# Between equally similar candidates, prefer the one under the same parent, then the one with
# the same code, then one not withdrawn: small enough never to outweigh a closer text.
SAME_PARENT_BONUS = 0.02
SAME_CODE_BONUS = 0.01
CURRENT_BONUS = 0.005
# Words for matching: letters and digits, case folded, so punctuation and markup do not count.
MATCH_WORD_RE = re.compile(r"\w+(?:['\u2019]\w+)*")


def match_words(text):
    return tuple(MATCH_WORD_RE.findall(text.casefold()))


def match_recommendations(parsed, stored):
    """Return {parsed code: stored recommendation it continues}, one to one, by text.

    1. Same words: each parsed recommendation takes a stored one with exactly its words.
    2. Then the rest by similarity of words (at least MIN_SIMILARITY, MIN_SHORT_SIMILARITY
       for short asks), the best pair first:
       a reworded ask keeps its identity, and of two asks split from one, the closer keeps
       it and the other is new. History never moves to a text that is not like its own.
    Ties go to the same parent, then the same code, then a current over a withdrawn one.
    Stored recommendations left out are the ones this version no longer has.
    """
    parsed_words = {item.code: match_words(item.text) for item in parsed}
    stored_words = {
        recommendation.pk: match_words(recommendation.text) for recommendation in stored
    }

    def bonus(item, recommendation):
        same_parent = parsed_words.get(item.parent_code, ()) == stored_words.get(
            recommendation.parent_id, ()
        )
        return (
            SAME_PARENT_BONUS * same_parent
            + SAME_CODE_BONUS * (item.code == recommendation.code)
            + CURRENT_BONUS * (recommendation.withdrawn_at is None)
        )

    by_words = defaultdict(list)
    for recommendation in stored:
        by_words[stored_words[recommendation.pk]].append(recommendation)
    exact = [
        (1.0 + bonus(item, recommendation), item, recommendation)
        for item in parsed
        for recommendation in by_words.get(parsed_words[item.code], ())
    ]
    matches = {}
    pair_best_first(exact, matches)

    taken = {recommendation.pk for recommendation in matches.values()}
    left = [recommendation for recommendation in stored if recommendation.pk not in taken]
    similar = []
    for recommendation in left:
        matcher = SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(stored_words[recommendation.pk])  # set_seq2 caches its index
        for item in parsed:
            if item.code in matches:
                continue
            matcher.set_seq1(parsed_words[item.code])
            if (
                matcher.real_quick_ratio() < MIN_SIMILARITY
                or matcher.quick_ratio() < MIN_SIMILARITY
            ):
                continue
            ratio = matcher.ratio()
            if ratio >= similarity_needed(parsed_words[item.code], stored_words[recommendation.pk]):
                similar.append((ratio + bonus(item, recommendation), item, recommendation))
    pair_best_first(similar, matches)
    return matches


def similarity_needed(words, other_words):
    if min(len(words), len(other_words)) <= SHORT_ASK_WORDS:
        return MIN_SHORT_SIMILARITY
    return MIN_SIMILARITY


def pair_best_first(candidates, matches):
    """Add to `matches` the (score, parsed, stored) candidates, best score first, skipping any
    whose parsed or stored side is already paired; equal scores go in document order."""
    taken = {recommendation.pk for recommendation in matches.values()}
    order = {id(candidate): number for number, candidate in enumerate(candidates)}
    for _score, item, recommendation in sorted(
        candidates, key=lambda candidate: (-candidate[0], order[id(candidate)])
    ):
        if item.code not in matches and recommendation.pk not in taken:
            matches[item.code] = recommendation
            taken.add(recommendation.pk)


def move_codes(stored, codes, *, unmatched, taken):
    """Give matched recommendations their new codes (`codes`: {pk: code}), and unmatched
    ones whose code the new version uses (`taken`) a code of their own, never two on one
    code at a time.

    Codes are unique per document, so each move waits for its code to be free; moves that
    wait on each other in a ring (two asks swapping places) go round through a temporary
    code. Each row is saved (not updated in bulk) so the audit log records the renumbering.
    """
    targets = dict(codes)
    for recommendation in unmatched:
        if recommendation.code in taken:
            targets[recommendation.pk] = withdrawn_code(recommendation)
    by_pk = {recommendation.pk: recommendation for recommendation in stored}
    holders = {recommendation.code: recommendation.pk for recommendation in stored}
    pending = {pk: code for pk, code in targets.items() if by_pk[pk].code != code}

    def move(recommendation, code):
        del holders[recommendation.code]
        recommendation.code = code
        recommendation.save(update_fields=["code", "updated_at"])
        holders[code] = recommendation.pk

    while pending:
        ready = [pk for pk, code in pending.items() if code not in holders]
        if not ready:
            pk = next(iter(pending))
            move(by_pk[pk], f"~{pk}")  # no imported code starts with "~"
            continue
        for pk in ready:
            move(by_pk[pk], pending.pop(pk))


def withdrawn_code(recommendation):
    """A code for a withdrawn recommendation whose own the new version gives to another."""
    suffix = f"-withdrawn-{recommendation.pk}"
    return (
        recommendation.code[: Recommendation._meta.get_field("code").max_length - len(suffix)]
        + suffix
    )


@dataclass(frozen=True)
class Snapshot:
    """What identified a stored recommendation before the import changed it."""

    code: str
    parent_id: int | None
    text: str
    withdrawn: bool

    @classmethod
    def of(cls, recommendation):
        return cls(
            recommendation.code,
            recommendation.parent_id,
            recommendation.text,
            recommendation.withdrawn_at is not None,
        )


def record_identity(result, recommendation, *, before):
    """Add a stored recommendation to the result's moved, reworded and restored lists, as it
    changed since `before` ({pk: Snapshot})."""
    old = before[recommendation.pk]
    if old.code != recommendation.code or old.parent_id != recommendation.parent_id:
        result.moved.append(Moved(recommendation, old.code))
    if old.text != recommendation.text:
        result.reworded.append(Reworded(recommendation, word_diff(old.text, recommendation.text)))
    if old.withdrawn:
        result.restored.append(recommendation)


def keep_former_codes(moved):
    """Remember the codes renumbered asks had, so links to them still lead somewhere."""
    FormerCode.objects.bulk_create(
        FormerCode(recommendation=item.recommendation, code=item.old_code)
        for item in moved
        if item.old_code != item.recommendation.code
    )


def word_changes(old, new):
    """Return the edit from `old` to `new` word by word: [(tag, words)], the tag "equal",
    "removed" or "added"."""
    old_words, new_words = old.split(), new.split()
    changes = []
    matcher = SequenceMatcher(None, old_words, new_words, autojunk=False)
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if tag == "equal":
            changes.append(("equal", " ".join(old_words[old_start:old_end])))
            continue
        if old_end > old_start:
            changes.append(("removed", " ".join(old_words[old_start:old_end])))
        if new_end > new_start:
            changes.append(("added", " ".join(new_words[new_start:new_end])))
    return changes


def word_diff(old, new):
    """Return the edit from `old` to `new` word by word: "[-removed-] {+added+}"."""
    marks = {"equal": "{}", "removed": "[-{}-]", "added": "{{+{}+}}"}
    return " ".join(marks[tag].format(words) for tag, words in word_changes(old, new))


def withdraw(recommendations):
    """Withdraw these (kept, with their history; no longer public); return the ones newly
    withdrawn."""
    newly = [
        recommendation for recommendation in recommendations if recommendation.withdrawn_at is None
    ]
    now = timezone.now()
    for recommendation in newly:
        recommendation.withdrawn_at = now
        recommendation.save(update_fields=["withdrawn_at", "updated_at"])
    return newly


def current_lead(recommendation):
    ownership = recommendation.ownerships.filter(role=Ownership.Role.LEAD).first()
    return ownership.agency if ownership else None


def set_owners(recommendation, owners):
    """Make these the recommendation's owners; return whether that changed them."""
    roles = {owners.lead.pk: Ownership.Role.LEAD} if owners.lead else {}
    roles |= {agency.pk: Ownership.Role.SUPPORTING for agency in owners.supporting}
    current = dict(recommendation.ownerships.values_list("agency_id", "role"))
    if current == roles:
        return False
    recommendation.ownerships.all().delete()
    Ownership.objects.bulk_create(
        Ownership(recommendation=recommendation, agency_id=agency_id, role=role)
        for agency_id, role in roles.items()
    )
    note_data_changed()  # bulk_create sends no signals
    mark_stale([recommendation.document_id])  # nor does the progress ledger hear of it
    return True


def set_themes(recommendation, names):
    """Make these the recommendation's themes, creating missing ones; return whether that
    changed them."""
    themes = [
        Theme.objects.filter(name__iexact=name).first() or Theme.objects.create(name=name)
        for name in names
    ]
    if {theme.pk for theme in themes} == set(recommendation.themes.values_list("pk", flat=True)):
        return False
    recommendation.themes.set(themes)
    return True


def assign(instance, values):
    """Set the attributes whose value differs; return their names."""
    changed = [name for name, value in values.items() if getattr(instance, name) != value]
    for name in changed:
        setattr(instance, name, values[name])
    return changed


def validate(instance, *, label):
    try:
        instance.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        problems = "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items()
        )
        raise DocumentImportError(f"{label}: {problems}") from None


# --- A document's edition in another language ------------------------------------------------


@dataclass(frozen=True)
class TranslationPair:
    """A stored recommendation and its version in the edition's language."""

    recommendation: Recommendation
    title: str
    text: str
    note: str


@dataclass
class TranslationResult:
    document: Document
    language: str
    pairs: list[TranslationPair]
    document_title: str = ""
    dry_run: bool = False
    # The edition as read (Markdown or CSV) and its format: what a review saves once confirmed.
    text: str = ""
    format: str = ""


def parse_translation(text, *, fmt, document_code):
    """Parse a document's edition in another language by its structure alone: numbered
    headings and the bold items listed under them (the readers that weigh wording read
    English, so they are not asked)."""
    if fmt == MARKDOWN:
        blocks = split_blocks(text)
        if numbered_sections(blocks):
            return parse_numbered_report(blocks, document_code=document_code)
    return parse_document(text, fmt=fmt, document_code=document_code)


def pair_translation(document, parsed):
    """Return a TranslationPair for each current recommendation of `document`, matched to the
    edition's by code: the same numbering, parents and order. A different structure raises
    DocumentImportError naming what differs."""
    stored = list(
        Recommendation.objects.current()
        .filter(document=document)
        .select_related("parent")
        .order_by("position", "pk")
    )
    if not stored:
        raise DocumentImportError(
            f"Document {document.code} has no recommendations to translate: import it first."
        )
    stored_codes = [recommendation.code for recommendation in stored]
    edition_codes = [item.code for item in parsed.recommendations]
    missing = [code for code in stored_codes if code not in edition_codes]
    extra = [code for code in edition_codes if code not in stored_codes]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"the translation lacks {', '.join(missing)}")
        if extra:
            parts.append(f"it has {', '.join(extra)}, which {document.code} does not")
        raise DocumentImportError(
            f"The translation's structure differs from {document.code}'s: {'; '.join(parts)}. "
            "Nothing was saved."
        )
    by_code = {item.code: item for item in parsed.recommendations}
    moved = [
        recommendation.code
        for recommendation in stored
        if by_code[recommendation.code].parent_code
        != (recommendation.parent.code if recommendation.parent_id else "")
    ]
    if moved or stored_codes != edition_codes:
        raise DocumentImportError(
            f"The translation's structure differs from {document.code}'s: "
            f"{', '.join(moved) or 'the order'} differ. Nothing was saved."
        )
    return [
        TranslationPair(
            recommendation=recommendation,
            title=by_code[recommendation.code].title
            or short_title(by_code[recommendation.code].text),
            text=by_code[recommendation.code].text,
            note=by_code[recommendation.code].note,
        )
        for recommendation in stored
    ]


def attach_translation(
    source: str | bytes,
    *,
    document_code: str,
    language: str,
    fmt: str | None = None,
    filename: str = "",
    content_type: str = "",
    dry_run: bool = False,
) -> TranslationResult:
    """Read a document's edition in `language` and save it as the translation of the
    recommendations already imported from the original (pair_translation): their title, text
    and note in `language`, and the document's title. All or nothing, in one transaction; a
    dry run saves nothing. Input that cannot be paired raises DocumentImportError."""
    document = Document.objects.filter(code=document_code).first()
    if document is None:
        raise DocumentImportError(f"No document {document_code}: import the original first.")
    if language == document.original_language:
        raise DocumentImportError(
            f"{document_code} was published in {language}: a translation is in another language."
        )
    text = decode_source(source, filename=filename, content_type=content_type)
    fmt = fmt or detect_format(text, filename=filename)
    parsed = parse_translation(text, fmt=fmt, document_code=document_code)
    with transaction.atomic():
        pairs = pair_translation(document, parsed)
        result = TranslationResult(
            document=document,
            language=language,
            pairs=pairs,
            document_title=parsed.title,
            dry_run=dry_run,
            text=text,
            format=fmt,
        )
        if not dry_run:
            save_translation(result)
    return result


def save_translation(result):
    """Write the paired texts into the `language` columns (audited saves, one per row)."""
    language = result.language
    for pair in result.pairs:
        recommendation = pair.recommendation
        for name in ("title", "text", "note"):
            setattr(recommendation, f"{name}_{language}", getattr(pair, name))
        recommendation.save(
            update_fields=[f"{name}_{language}" for name in ("title", "text", "note")]
        )
    if result.document_title:
        setattr(result.document, f"title_{language}", result.document_title)
        result.document.save(update_fields=[f"title_{language}"])
    note_data_changed()
