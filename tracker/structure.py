"""Find a document's asks in Markdown, whatever its shape, as a tree.

Django-free and pure: Markdown in, a list of `Ask` out (codes "1", "1.1", "1.2.3", parents
first). markdown-it-py reads the blocks (headings of any style, lists nested to any depth,
tables, quotes); plain rules then decide which blocks recommend something. `importing`
turns the asks into `ParsedRecommendation`s.
"""

import html
import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

HEADING = "heading"
PARAGRAPH = "paragraph"
ITEM = "item"  # the first paragraph of a list item
ITEM_MORE = "item-more"  # a later paragraph of the same list item
QUOTE = "quote"
TABLE = "table"
RULE = "rule"

# Words that make a sentence recommend something, in English and Spanish.
RECOMMENDING_RE = re.compile(
    r"\b(?:should|must|shall|ought to|urges?|urging|calls? (?:on|upon)|recommends?"
    r"|deben?|deber[áa]n?|deber[íi]an?|instamos|pedimos|exhortamos|solicitamos|recomendamos"
    r"|urgimos)\b",
    re.IGNORECASE,
)
# Verbs that open an ask in the imperative (English) or the infinitive (Spanish).
IMPERATIVES = frozenset(
    """
    abolish adopt allocate allow appoint appropriate authorize build cease close commit continue
    create define designate develop direct discontinue double eliminate empower end
    engage enact enforce ensure establish exempt expand extend facilitate fix fund grant guarantee
    halt hire implement improve include increase invest issue lead lift limit maintain make
    modernize negotiate offer pass prevent prioritize prioritise prohibit protect provide publish
    raise reaffirm redesignate reduce reform reinstate reject release remove reopen repeal replace
    request require rescind resume restore restrict resettle return reverse review scale secure
    set simplify stop strengthen streamline support suspend terminate train treat uphold upgrade
    use withdraw work reunite welcome admit accept monitor investigate hold respect recognize
    recognise reauthorize codify condemn coordinate consult oppose refrain revoke keep let give
    bring put help ban pause address apply assess collect conduct consider encourage evaluate
    expedite finalize identify inform mandate partner pursue reallocate recruit reimburse renew
    report rebuild sign ratify update do act
    garantizar asegurar ampliar financiar restablecer crear proteger establecer eliminar aumentar
    detener reanudar suspender promover fortalecer implementar adoptar otorgar respetar poner
    cesar derogar permitir reconocer incrementar apoyar invertir mejorar
    """.split()
)
# Contact blocks, navigation and site boilerplate: never asks.
NOT_ASK_RE = re.compile(
    r"\b(?:media inquiries|press inquiries|for more information|contact us|share this"
    r"|all rights reserved|copyright|subscribe|sign up for|donate|read more|back to top"
    r"|skip to)\b|©|@\w+\.\w+|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b|\+\d{1,3}[ .]\d"
    r"|[\"\u201d],?\s+(?:said|says|according to|dijo|afirm[óo]|señal[óo])\b",
    re.IGNORECASE,
)
# A heading naming the part of a document that holds its asks.
RECOMMENDATIONS_HEADING_RE = re.compile(
    r"\b(?:recommendations|recomendaciones|what we ask|our asks|policy asks|we urge|we call)\b",
    re.IGNORECASE,
)
# The mark opening a numbered or lettered heading: "1.", "2)", "1.2", "A.", "Recommendation 3 -".
HEADING_MARK_RE = re.compile(
    r"^(?:(?P<word>recommendations?|recomendaci[oó]n)\s+)?(?P<mark>\d{1,2}(?:\.\d{1,2})*|[A-Z])"
    r"(?:\s*[.):]|\s+[\u2013\u2014-]|(?<=\d\.\d)|(?<=\d\.\d\d))\s+(?P<text>\S.*)$"
    r"|^(?P<bare>(?:recommendation|recomendaci[oó]n)\s+(?P<number>\d{1,2}))$",
    re.IGNORECASE,
)
# "(Recommendation 1)" closing a GAO table cell.
RECOMMENDATION_REF_RE = re.compile(
    r"\s*\((?:recommendation|recomendaci[oó]n)\s+\d+\)", re.IGNORECASE
)
# A bold span opening a paragraph or item, closing marker optional (page breaks split spans).
LEADING_BOLD_RE = re.compile(r"^(\*\*|__)(?P<text>.+?)(?:\1|\Z)", re.DOTALL)
BOLD_RE = re.compile(r"(\*\*|__)(?P<text>.+?)(?:\1|\Z)", re.DOTALL)
# A title line found in text without headings: long enough not to be a date, a name or a label,
# short enough not to be a sentence of the body.
MIN_TITLE_LINE_WORDS = 5
MAX_TITLE_LINE_LENGTH = 120
# A bold span in running text needs this many words to be an ask rather than a fact.
MIN_INLINE_ASK_WORDS = 8

# Footnote markers and furniture that must not reach stored text.
FOOTNOTE_REF_RE = re.compile(r"\[\^[^\]]*\]")
SUPERSCRIPT_TAG_RE = re.compile(r"<sup\b[^>]*>.*?</sup>", re.IGNORECASE | re.DOTALL)
SUPERSCRIPT_DIGITS_RE = re.compile(r"[\u00b9\u00b2\u00b3\u2070-\u2079]+")
# A footnote number glued to the punctuation ending a word: "border.12", "said,3".
GLUED_FOOTNOTE_RE = re.compile(r"(?<=[A-Za-z)][.,;:\"\u201d\u2019])\d{1,3}(?=\s|$)")
HTML_TAG_RE = re.compile(r"</?[A-Za-z][^>]*>")
LINK_RE = re.compile(r"!?\[(?P<text>[^\]]*)\]\([^)]*\)")
ESCAPE_RE = re.compile(r"\\(?P<char>[\\`*_{}\[\]()#+\-.!|>])")
EMPHASIS_RE = re.compile(r"\*+|(?<!\w)_+|_+(?!\w)|`+")
WHITESPACE_RE = re.compile(r"\s+")
SENTENCE_END_RE = re.compile(r"(?<![\s.][A-Z]\.)(?<=[.!?])\s+(?=[\"\u201c\u2018(¿¡]?[A-Z0-9])")
# Bullet glyphs left in text copied from a PDF or a web page: "» ", "•", "▪ ".
GLYPH_BULLET_RE = re.compile(r"^(?:[\u2022\u25aa\u25cf\u25e6\u00b7\u00bb\u2023\u2043\u25a0]\s*)+")
# Markers of lists CommonMark does not know: glyphs, "a)", "b.", "(c)", "(iv)".
TEXT_MARKER_RE = re.compile(
    r"^\s*(?:[\u2022\u25aa\u25cf\u25e6\u00b7\u00bb\u2023\u2043\u25a0]|\(?[a-z]\)|[a-z]\.(?=\s)"
    r"|\([ivx]+\))\s*"
)
# "Recommendation 1:" labelling an ask that follows on the same line.
ASK_LABEL_RE = re.compile(
    r"^(?:\*\*|__)?(?:recommendation|recomendaci[oó]n)\s+\d+\s*(?:[:.]|\s[\u2013\u2014-])"
    r"\s*(?:\*\*|__)?\s*(?=\S)",
    re.IGNORECASE,
)
# A bold line naming whom the asks below address: "To Congress:", "Al Gobierno de México".
ADDRESSEE_RE = re.compile(
    r"^(?:[Tt]o|[Ff]or|[Aa]l|[Aa] la|[Aa] los|[Aa] las|[Pp]ara)\s+(?:the\s+)?[A-ZÁÉÍÓÚ]"
)
# A list item that is nothing but a link: navigation.
LINK_ONLY_RE = re.compile(r"^\s*!?\[[^\]]*\]\([^)]*\)\s*$")
QUOTED_RE = re.compile(r"^[\"\u201c\u00ab].*[\"\u201d\u00bb][.,]?$", re.DOTALL)

MARKDOWN_PARSER = MarkdownIt("commonmark").enable("table")
# "1. Title" underlined with "---" or "===": CommonMark reads a list item (and a rule), but its
# author meant a numbered setext heading.
NUMBERED_SETEXT_RE = re.compile(
    r"^(?P<number>[ \t]{0,3}\d{1,2})(?P<mark>[.)])(?= )(?=.*\n[ \t]{0,3}(?:-{3,}|={3,})[ \t]*$)",
    re.MULTILINE,
)


@dataclass
class Block:
    kind: str
    text: str = ""  # inline Markdown
    level: int = 0  # a heading's 1 to 6; a list item's nesting depth, from 1
    rows: list = field(default_factory=list)  # a table's rows of inline Markdown cells


@dataclass
class Ask:
    code: str
    text: str
    parent_code: str = ""
    section_title: str = ""
    note: str = ""
    lead_in: str = ""


@dataclass
class Node:
    text: str
    note: str = ""
    section_title: str = ""
    lead_in: str = ""
    number: str = ""  # the number its heading gave it, if any
    children: list = field(default_factory=list)


# --- Text ----------------------------------------------------------------------------------


def plain_text(markdown):
    """Return inline Markdown as clean text: no markup, HTML, footnote markers or escapes."""
    text = SUPERSCRIPT_TAG_RE.sub("", markdown)
    text = FOOTNOTE_REF_RE.sub("", text)
    text = HTML_TAG_RE.sub("", text)
    text = LINK_RE.sub(r"\g<text>", text)
    text = EMPHASIS_RE.sub("", text)
    text = ESCAPE_RE.sub(r"\g<char>", text)
    text = SUPERSCRIPT_DIGITS_RE.sub("", html.unescape(text))
    text = GLUED_FOOTNOTE_RE.sub("", text)
    text = RECOMMENDATION_REF_RE.sub("", text)  # GAO's "(Recommendation 1)": the code says it
    return WHITESPACE_RE.sub(" ", text).strip()


def split_sentences(text):
    return SENTENCE_END_RE.split(text.strip())


def capitalise(text):
    return text[:1].upper() + text[1:]


def normalised(text):
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def is_not_ask(text):
    """Questions, quotations, contact blocks and boilerplate."""
    return (
        not text
        or text.rstrip(" *_").endswith("?")
        or bool(QUOTED_RE.match(text))
        or bool(NOT_ASK_RE.search(text))
    )


# Words after an opening verb that show it is a noun: "Support for refugees fell".
NOUN_FOLLOWERS = frozenset(
    "of for is are was were has have had from fell rose grew remains remained de del es fue".split()
)

COPULAS = frozenset("is are was were has have es son fue".split())


def opens_with_imperative(text):
    words = re.findall(r"[\w-]+", text.lower(), re.UNICODE)[:3]
    second, third = [*words, "", "", ""][1:3]
    if second in NOUN_FOLLOWERS or third in COPULAS:
        return False  # "Support for refugees fell", "Work authorization is delayed"
    if re.match(r"^\W*[\w-]+:", text):
        return False  # "Report: detention rises"
    return bool(words) and (words[0] in IMPERATIVES or words[:2] == ["poner", "fin"])


# Words that open a sentence without being verbs, when a determiner follows them: "In the
# region", "All the families", "Today the courts".
NOT_VERBS = frozenset(
    """
    a an the this that these those it its we our they their he his she her you your i my there
    here in on at for with by from to of after before during under over since despite across
    among beyond through throughout within without between about against along around behind
    below above like unlike toward towards upon into onto near per via as if when while because
    although though unless until once whereas where whether and or but so yet then also only
    even all both each every some many most much few half several any no not nearly almost
    today yesterday now last next meanwhile however moreover still thus instead why how what
    who which el la los las en de del con por para que un una y o
    """.split()
)
# What follows a verb that takes an object: "Press the", "Register every", "Waive its".
OBJECT_OPENERS = frozenset(
    """
    the a an every each all any its their our his her them it us more new no what how whether
    existing current everyone everybody anyone
    """.split()
)


def reads_as_imperative(text):
    """Whether a sentence opens like a command whose verb we do not list: a word that is no
    function word, gerund or past form, followed by a determiner ("Press the government")."""
    words = re.findall(r"[\w'-]+", text, re.UNICODE)[:2]
    if len(words) < 2 or not words[0][:1].isupper() or words[0].isupper():
        return False
    first, second = words[0].lower(), words[1].lower()
    return (
        first not in NOT_VERBS
        and not first.endswith(("ing", "ed", "ly"))
        and second in OBJECT_OPENERS
        and not is_not_ask(text)
    )


def is_ask(text):
    """Whether the text recommends something: a recommending verb or an opening imperative."""
    if is_not_ask(text):
        return False
    first = split_sentences(text)[0]
    return bool(RECOMMENDING_RE.search(first)) or opens_with_imperative(first)


def is_inline_ask(text):
    """A bold span in running text: an ask only with a recommending verb and enough words."""
    return is_ask(text) and len(text.split()) >= MIN_INLINE_ASK_WORDS


# --- Blocks --------------------------------------------------------------------------------


def read_blocks(markdown):
    """Return the document's blocks in order, with list nesting and quotes marked."""
    blocks = []
    depth = 0  # open lists
    quotes = 0  # open blockquotes
    item_paragraphs = []  # per open list item: paragraphs seen so far
    heading_level = 0
    table = None
    markdown = NUMBERED_SETEXT_RE.sub(r"\g<number>\\\g<mark>", markdown)
    for token in MARKDOWN_PARSER.parse(markdown):
        kind = token.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif kind == "list_item_open":
            item_paragraphs.append(0)
        elif kind == "list_item_close":
            item_paragraphs.pop()
        elif kind == "blockquote_open":
            quotes += 1
        elif kind == "blockquote_close":
            quotes -= 1
        elif kind == "heading_open":
            heading_level = int(token.tag[1])
        elif kind == "hr":
            blocks.append(Block(RULE))
        elif kind == "table_open":
            table = Block(TABLE)
        elif kind == "tr_open":
            table.rows.append([])
        elif kind == "table_close":
            blocks.append(table)
            table = None
        elif kind == "inline":
            if table is not None:
                table.rows[-1].append(token.content)
            elif heading_level:
                blocks.append(Block(HEADING, token.content, level=heading_level))
                heading_level = 0
            elif quotes:
                blocks.append(Block(QUOTE, token.content))
            elif item_paragraphs:
                first = item_paragraphs[-1] == 0
                item_paragraphs[-1] += 1
                head, *marked = split_marked_lines(GLYPH_BULLET_RE.sub("", token.content))
                blocks.append(Block(ITEM if first else ITEM_MORE, head, level=depth))
                blocks += [Block(ITEM, line, level=depth + 1) for line in marked]
            elif TEXT_MARKER_RE.match(token.content):
                # "•**Reopen…**", "a) Fund…": a list whose markers Markdown does not know
                head, *marked = split_marked_lines(token.content)
                blocks += [Block(ITEM, line, level=depth + 1) for line in (head, *marked)]
            else:
                blocks.append(bold_heading(token.content) or Block(PARAGRAPH, token.content))
    return blocks


def split_marked_lines(content):
    """Split text into the part before any marked line and the marked lines, markers dropped.

    A line without a marker continues the line before it."""
    parts = [""]
    for line in content.split("\n"):
        if TEXT_MARKER_RE.match(line):
            parts.append(TEXT_MARKER_RE.sub("", line, count=1))
        else:
            parts[-1] = f"{parts[-1]}\n{line}" if parts[-1] else line
    head, *marked = parts
    return ([head] if head or not marked else [marked.pop(0)]) + marked


def bold_heading(markdown):
    """A paragraph bold from end to end and numbered, "**1. Title.**", is a heading."""
    match = re.fullmatch(r"(\*\*|__)(?P<text>.+)\1", markdown.strip(), re.DOTALL)
    if match is None:
        return None
    title = plain_text(match["text"])
    if HEADING_MARK_RE.match(title):
        return Block(HEADING, match["text"], level=7)
    if RECOMMENDATIONS_HEADING_RE.search(title) and len(title) < 60 and not is_ask(title):
        return Block(HEADING, match["text"], level=7)  # "**Our recommendations**"
    if ADDRESSEE_RE.match(title) and len(title) < 80:
        return Block(HEADING, match["text"], level=7)  # "**To the Department of State:**"
    return None


def split_bold_lead(markdown):
    """Return (bold text, rest) when the text opens with a bold sentence of its own, else None.

    "**Restore** asylum at ports" is one sentence with a bold word, not a lead-in."""
    match = LEADING_BOLD_RE.match(markdown)
    if match is None:
        return None
    rest = plain_text(markdown[match.end() :])
    if rest and not re.match(r"^[.:;,]?\s*(?:[\"\u201c(¿¡]?[A-Z0-9\u00c0-\u00de]|$)", rest):
        return None
    return plain_text(match["text"]), rest.lstrip(".,;: ")


# A lead-in's closing words before its colon: "The administration should:", "KIND urges
# Congress to:". An ask that merely continues in a list ("Fund X, including:") ends otherwise.
LEAD_IN_END_RE = re.compile(
    r"(?:\b(?:should|must|shall|will|to|urges?|recommends?|that|the following|following"
    r"|deben?|deber[áa]n?|a|que|siguiente|siguientes)|\bcalls? on \S+(?: \S+)?)\s*:$",
    re.IGNORECASE,
)


def only_introduces(text):
    """Whether a line ending in a colon only introduces what follows, rather than asking."""
    return bool(LEAD_IN_END_RE.search(text)) or not is_ask(text)


def heading_mark(text):
    """Return (mark, title) for a numbered or lettered heading that asks, else None."""
    match = HEADING_MARK_RE.match(text)
    if match is None:
        return None
    if match["bare"]:
        return match["number"], ""
    title = match["text"].strip()
    asks = is_ask(title) or reads_as_imperative(title)
    if match["mark"].isalpha() and not asks:
        return None  # "A. Background", "I. Introduction"
    if not match["word"] and not asks:
        return None  # "1. Background": a chapter, not an ask
    return match["mark"], title


# --- The tree ------------------------------------------------------------------------------


def find_asks(markdown):
    """Return the document's asks as a flat list, parents first, coded by their place."""
    blocks = read_blocks(markdown)
    scoped = recommendation_sections(blocks)
    roots = build_tree(scoped, explicit=True) if scoped else []
    if not roots:
        roots = build_tree(blocks, explicit=False)
    return list(coded(merge_repeated(roots)))


def is_section_heading(title):
    """A heading naming the part that holds the asks: "Recommendations", "What we ask"."""
    return bool(RECOMMENDATIONS_HEADING_RE.search(title))


def recommendation_sections(blocks):
    """Return the blocks inside the sections headed "Recommendations" and the like."""
    inside = []
    level = None
    for block in blocks:
        if block.kind == HEADING:
            title = plain_text(block.text)
            numbered = heading_mark(title) is not None
            if is_section_heading(title) and not numbered:
                level = block.level
                continue
            if level is not None and not numbered and block.level <= level:
                level = None
        if level is not None:
            inside.append(block)
    return inside


class TreeBuilder:
    def __init__(self, *, explicit):
        # Inside a "Recommendations" section, a plain paragraph that recommends is an ask;
        # elsewhere it is background.
        self.explicit = explicit
        self.seen_title = False
        self.bare_heading = False  # "## Recommendation 3" alone: the next paragraph is its text
        self.roots = []
        self.heading_node = None  # the numbered heading the text is under
        self.under = None  # where asks found in the text go: that heading or a lettered one in it
        self.heading_level = 0
        self.heading_is_digit = False
        self.section_title = ""
        self.lead_in = ""
        self.items = {}  # depth -> the ask made by the open list item at that depth, or None
        self.item_lead_ins = {}  # depth -> a list item ending in ":" that introduces its children
        self.last = None  # the ask a following explanatory paragraph belongs to
        self.awaits_note = False

    def add(self, node, parent=None):
        (parent.children if parent else self.roots).append(node)
        self.last = node
        return node

    def heading(self, block):
        title = plain_text(block.text)
        mark = heading_mark(title)
        if mark is None and self.explicit and is_ask(title) and not is_section_heading(title):
            mark = ("", title)  # "### End family detention" inside a Recommendations section
        self.lead_in = ""
        self.items = {}
        self.item_lead_ins = {}
        self.awaits_note = False
        if mark is None:
            if self.heading_node is None or block.level <= self.heading_level:
                self.heading_node = self.under = None
            if block.level > 1 or self.seen_title:
                self.section_title = title  # "To the Department of State": whom asks address
            self.seen_title = True  # the first level-one heading is the document's title
            self.last = None
            return
        number, text = mark
        self.bare_heading = not text
        text = text or title
        nested = self.heading_node is not None and (
            (number.isdigit() != self.heading_is_digit and block.level > self.heading_level)
            or number.startswith(f"{self.heading_node.number}.")  # "1.2" under "1"
        )
        if nested:
            self.under = self.add(Node(text, section_title=self.section_title), self.heading_node)
            self.awaits_note = True
            return
        self.section_title = text
        self.heading_node = self.add(
            Node(text, section_title=text, number=number if number.isdigit() else "")
        )
        self.under = self.heading_node
        self.heading_level = block.level
        self.heading_is_digit = number.isdigit()
        self.awaits_note = True

    def paragraph(self, block):
        block.text = ASK_LABEL_RE.sub("", block.text.strip())
        text = plain_text(block.text)
        bold = split_bold_lead(block.text.strip())
        self.items = {}
        if self.bare_heading and self.last is not None and text:
            self.bare_heading = False
            self.last.text, self.last.note = bold if bold else (text, "")
            self.last.section_title = self.section_title = self.last.text
            self.awaits_note = not self.last.note
            return
        if bold and heading_mark(bold[0]):
            # "**1. Fund shelters.** Why it matters…": a numbered heading run into its note
            self.heading(Block(HEADING, bold[0], level=7))
            if bold[1] and self.last is not None:
                self.last.note = bold[1]
                self.awaits_note = False
            return
        if bold and is_ask(bold[0]):
            ask, note = capitalise(bold[0]), bold[1]
            self.add(self.node(ask, note=note), self.under)
            self.awaits_note = not note
            return
        spans = [m for m in BOLD_RE.finditer(block.text) if is_inline_ask(plain_text(m["text"]))]
        if spans:
            ends = [span.start() for span in spans[1:]] + [len(block.text)]
            for span, end in zip(spans, ends, strict=True):
                note = plain_text(block.text[span.end() : end]).lstrip(".,;: ")
                self.add(self.node(capitalise(plain_text(span["text"])), note=note), self.under)
            self.awaits_note = False
            return
        if text.endswith(":"):
            self.lead_in = split_sentences(text)[-1]
            self.last = None
            return
        self.lead_in = ""  # a paragraph between a lead-in and a list ends the lead-in
        if self.awaits_note and self.last is not None and not is_not_ask(text):
            self.last.note = "\n\n".join(filter(None, (self.last.note, text)))
        elif self.explicit and is_ask(text) and "following" not in text.lower():
            ask, *rest = split_sentences(text)
            self.add(self.node(ask, note=" ".join(rest)), self.under)
        self.awaits_note = False

    def item(self, block):
        depth = block.level
        sibling = self.items.get(depth)  # the ask the item before this one made, if any
        for deeper in [d for d in self.items if d >= depth]:
            del self.items[deeper]
        for deeper in [d for d in self.item_lead_ins if d >= depth]:
            del self.item_lead_ins[deeper]
        if LINK_ONLY_RE.match(block.text):
            self.items[depth] = None
            return
        block.text = ASK_LABEL_RE.sub("", block.text.strip())
        bold = split_bold_lead(block.text)
        text, note = bold or (plain_text(block.text), "")
        text = capitalise(text)
        lead_in = next(
            (self.item_lead_ins[d] for d in sorted(self.item_lead_ins, reverse=True)), self.lead_in
        )
        parent = next(
            (self.items[d] for d in sorted(self.items, reverse=True) if self.items[d]),
            self.under,
        )
        introduces = text.endswith(":") and not note and only_introduces(text)
        asks = not introduces and (
            is_ask(text)
            or (self.explicit and reads_as_imperative(text))  # a verb we do not list
            or (lead_in and not is_not_ask(text))
            or (bold and self.heading_node is not None and not is_not_ask(text))
            or (parent is not None and parent is not self.under and not is_not_ask(text))
            # "**Count what matters.** Agencies should publish…" after other asks: a title
            # whose explanation asks
            or (bold and note and sibling is not None and not is_not_ask(text) and is_ask(note))
        )
        if introduces:
            self.item_lead_ins[depth] = text
            self.items[depth] = None
            return
        if not asks:
            self.items[depth] = None
            self.last = None
            return
        self.items[depth] = self.add(self.node(text, note=note, lead_in=lead_in), parent)
        self.awaits_note = False

    def item_more(self, block):
        node = self.items.get(block.level)
        text = plain_text(block.text)
        if node is not None and text and not is_not_ask(text):
            node.note = "\n\n".join(filter(None, (node.note, text)))

    def table(self, block):
        header, *rows = block.rows or [[]]
        names = [plain_text(cell).lower() for cell in header]
        named = [i for i, n in enumerate(names) if "recomend" in n or "recommend" in n]
        column = (
            named[0]
            if named
            else max(
                range(len(header)),
                key=lambda i: sum(i < len(row) and is_ask(plain_text(row[i])) for row in rows),
                default=0,
            )
        )
        for row in rows:
            if column >= len(row):
                continue
            text = plain_text(row[column])
            if is_ask(text):
                self.add(self.node(text), self.under)

    def node(self, text, *, note="", lead_in=""):
        return Node(text, note=note, section_title=self.section_title, lead_in=lead_in)

    def read(self, blocks):
        for block in blocks:
            if block.kind == HEADING:
                self.heading(block)
            elif block.kind == PARAGRAPH:
                self.paragraph(block)
            elif block.kind == ITEM:
                self.item(block)
            elif block.kind == ITEM_MORE:
                self.item_more(block)
            elif block.kind == TABLE:
                self.table(block)
            elif block.kind in (QUOTE, RULE):
                self.lead_in = ""
                self.last = None
                self.awaits_note = False
                if block.kind == RULE:
                    self.heading_node = self.under = None
        return self.roots


def build_tree(blocks, *, explicit):
    return TreeBuilder(explicit=explicit).read(blocks)


def merge_repeated(nodes, seen=None):
    """Keep each ask once (same normalised text), with the fuller text and note."""
    seen = {} if seen is None else seen
    kept = []
    for node in nodes:
        key = normalised(node.text)
        first = seen.get(key)
        if first is None:
            seen[key] = node
            kept.append(node)
            node.children = merge_repeated(node.children, seen)
            continue
        if len(node.text) + len(node.note) > len(first.text) + len(first.note):
            first.text, first.note = node.text, node.note
        first.children += merge_repeated(node.children, seen)
    return kept


def coded(nodes, parent_code=""):
    """Yield asks depth first; top-level codes keep their headings' numbers when all have one."""
    numbers = [node.number for node in nodes]
    use_numbers = not parent_code and all(numbers) and len(set(numbers)) == len(numbers)
    for position, node in enumerate(nodes, start=1):
        local = node.number if use_numbers else str(position)
        code = f"{parent_code}.{local}" if parent_code else local
        yield Ask(
            code=code,
            text=node.text,
            parent_code=parent_code,
            section_title=node.section_title,
            note=node.note,
            lead_in=node.lead_in,
        )
        yield from coded(node.children, code)


def document_title(markdown):
    """The first level-one heading's text, else the first heading's, else the first short line
    that reads like a title (plain text and PDF copies have no headings)."""
    # An empty heading is a mark, such as the "###" that ends a press release.
    headings = [b for b in read_blocks(markdown) if b.kind == HEADING and plain_text(b.text)]
    heading = next((b for b in headings if b.level == 1), headings[0] if headings else None)
    if heading is not None:
        return plain_text(heading.text)
    for line in markdown.splitlines():
        line = " ".join(plain_text(line).split())
        if looks_like_title_line(line):
            return line
    return ""


def looks_like_title_line(line):
    """A line of a few words that is neither a label ("FOR IMMEDIATE RELEASE", "Contact:"), a
    date or name, nor running text."""
    words = line.split()
    return (
        len(words) >= MIN_TITLE_LINE_WORDS
        and len(line) <= MAX_TITLE_LINE_LENGTH
        and not line.isupper()
        and not line.endswith((":", ".", ","))
        and not NOT_ASK_RE.search(line)
    )
