"""Make the corpus documents that are generated rather than written: the long report (its
filler chapters), its PDF, the Word brief, and a PDF and a Word copy of two Markdown
documents. Everything is deterministic: the same text on every run, so the ground truth
always holds.

The asks are all hand-written in the sources (long-report.skeleton.md, word-brief.source.md);
only background paragraphs are generated.

Usage: python tests/corpus/make.py DEST_DIR   (the bench and the tests call build(dest))
"""

import logging
import random
import re
import sys
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent
FILLER_RE = re.compile(r"^\{\{FILLER: (?P<title>.+)\}\}$", re.MULTILINE)
# About 40 pages of text in the PDF: sections per chapter, paragraphs per section.
SECTIONS_PER_CHAPTER = 5
PARAGRAPHS_PER_SECTION = 6
SEED = 13

# Background prose is built from these parts; none makes a recommendation ("should", "must",
# imperatives), so every ask in the report is one written by hand.
OPENINGS = (
    "Between 2015 and 2024,",
    "In the years we studied,",
    "According to the records we obtained,",
    "In interviews with shelter staff,",
    "Across the region,",
    "By the end of the period,",
    "In the border cities we visited,",
    "As several officials acknowledged,",
)
SUBJECTS = (
    "the number of families arriving at the border",
    "the share of asylum claims decided within a year",
    "the cost of a smuggler's fee from Guatemala",
    "the number of shelter beds in Tapachula",
    "the average wait for a hearing in immigration court",
    "the number of returns from Mexico to Honduras",
    "the share of children travelling alone",
    "the budget of the Mexican asylum agency",
    "the number of people using legal pathways",
    "the volume of remittances sent to El Salvador",
)
TRENDS = (
    "rose steadily, with sharp peaks after each policy change",
    "fell for two years and then returned to its earlier level",
    "varied widely from one state to the next",
    "doubled, although the data before 2018 are incomplete",
    "changed little despite repeated announcements",
    "tracked economic conditions more closely than enforcement",
)
CONTEXTS = (
    "Local organisations described the change as gradual rather than sudden.",
    "Researchers have offered several explanations for this pattern.",
    "Families we met rarely mentioned US policy as a reason for their timing.",
    "The official figures do not distinguish between first arrivals and repeat attempts.",
    "Comparable data for Nicaragua were not available.",
    "Similar patterns appear in earlier studies of the Caribbean route.",
    "Shelter directors said that demand often exceeded their capacity by half.",
    "Public statements at the time gave a different impression.",
)
PLACES = (
    "Tijuana",
    "Ciudad Juárez",
    "Reynosa",
    "Tapachula",
    "Tenosique",
    "San Pedro Sula",
    "Quetzaltenango",
    "San Salvador",
    "Nogales",
    "Matamoros",
)


def filler_paragraph(rng):
    sentences = [
        f"{rng.choice(OPENINGS)} {rng.choice(SUBJECTS)} {rng.choice(TRENDS)}.",
        rng.choice(CONTEXTS),
        f"In {rng.choice(PLACES)}, {rng.choice(SUBJECTS)} {rng.choice(TRENDS)}.",
        rng.choice(CONTEXTS),
        f"{rng.choice(OPENINGS)} {rng.choice(SUBJECTS)} {rng.choice(TRENDS)}, "
        f"while {rng.choice(SUBJECTS)} {rng.choice(TRENDS)}.",
        rng.choice(CONTEXTS),
    ]
    return " ".join(sentences)


def filler_chapter(title, rng):
    parts = [f"## {title}"]
    for section in range(1, SECTIONS_PER_CHAPTER + 1):
        parts.append(f"### {title.split(':')[0]}.{section} {rng.choice(PLACES)} and beyond")
        parts.extend(filler_paragraph(rng) for _ in range(PARAGRAPHS_PER_SECTION))
        if section == 2:  # bullets of facts, which are not asks
            parts.append(
                "\n".join(
                    f"- {capitalise(rng.choice(SUBJECTS))} {rng.choice(TRENDS)}." for _ in range(3)
                )
            )
    return "\n\n".join(parts)


def capitalise(text):
    return text[:1].upper() + text[1:]


def long_report_markdown():
    rng = random.Random(SEED)
    skeleton = (CORPUS_DIR / "long-report.skeleton.md").read_text(encoding="utf-8")
    return FILLER_RE.sub(lambda match: filler_chapter(match["title"], rng), skeleton)


# -- a small Markdown reader for the two renderers --------------------------------------------

BOLD_SPLIT_RE = re.compile(r"(\*\*.+?\*\*)")
NUMBERED_RE = re.compile(r"^(?P<indent> *)(?P<number>\d+)\. (?P<text>.*)$")
BULLET_RE = re.compile(r"^(?P<indent> *)- (?P<text>.*)$")


def blocks(markdown):
    """Yield (kind, level, text) for the Markdown subset the sources use: headings (level
    1-3), numbered and bulleted items (level = nesting, from 0), italic lines and paragraphs."""
    paragraph = []
    for line in [*markdown.splitlines(), ""]:
        heading = re.match(r"^(#{1,3}) (.*)$", line)
        numbered, bullet = NUMBERED_RE.match(line), BULLET_RE.match(line)
        if paragraph and (not line.strip() or heading or numbered or bullet):
            yield "paragraph", 0, " ".join(paragraph)
            paragraph = []
        if heading:
            yield "heading", len(heading[1]), heading[2]
        elif numbered:
            yield "numbered", len(numbered["indent"]) // 3, numbered["text"]
        elif bullet:
            yield "bullet", len(bullet["indent"]) // 2, bullet["text"]
        elif line.strip():
            paragraph.append(line.strip())


def runs(text):
    """Split text into (text, bold) runs; italics lose their asterisks."""
    for part in BOLD_SPLIT_RE.split(text):
        if part.startswith("**") and part.endswith("**"):
            yield part[2:-2], True
        elif part:
            yield part.replace("*", ""), False


# -- PDF (fpdf2) -----------------------------------------------------------------------------

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
HEADING_SIZES = {1: 18, 2: 15, 3: 12.5}
BODY_SIZE = 10.5
# Without a Unicode font, the core font takes Latin-1 only.
LATIN1 = str.maketrans(
    {"\u2013": "-", "\u2014": "-", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2022": "-"}
)


def write_pdf(markdown, path):
    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # it logs every font subset
    pdf = FPDF(format="Letter")
    pdf.set_creation_date(__import__("datetime").datetime(2025, 11, 1))
    unicode_font = (DEJAVU / "DejaVuSans.ttf").is_file()
    if unicode_font:
        pdf.add_font("Body", "", str(DEJAVU / "DejaVuSans.ttf"))
        pdf.add_font("Body", "B", str(DEJAVU / "DejaVuSans-Bold.ttf"))
        family, bullet_mark = "Body", "\u2022"
    else:
        family, bullet_mark = "Helvetica", "-"
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    def clean(text):
        return text if unicode_font else text.translate(LATIN1)

    counters = {}
    for kind, level, text in blocks(markdown):
        pdf.set_x(pdf.l_margin)
        if kind == "heading":
            pdf.ln(3)
            pdf.set_font(family, "B", HEADING_SIZES[level])
            pdf.multi_cell(0, HEADING_SIZES[level] * 0.5, clean(text.replace("*", "")))
            pdf.ln(1)
            counters.clear()
            continue
        pdf.set_font(family, "", BODY_SIZE)
        markdown_text = "".join(f"**{part}**" if bold else part for part, bold in runs(clean(text)))
        if kind in ("numbered", "bullet"):
            counters[level] = counters.get(level, 0) + 1
            mark = f"{counters[level]}." if kind == "numbered" else bullet_mark
            indent = 6 + 8 * level
            pdf.set_x(pdf.l_margin + indent)
            pdf.cell(6, 5.5, mark)
            pdf.multi_cell(0, 5.5, markdown_text, markdown=True)
        else:
            counters.clear()
            pdf.multi_cell(0, 5.5, markdown_text, markdown=True)
            pdf.ln(2)
    pdf.output(str(path))


# -- DOCX (python-docx) ----------------------------------------------------------------------


def write_docx(markdown, path):
    import docx

    document = docx.Document()
    document.core_properties.created = __import__("datetime").datetime(2025, 7, 1)
    for kind, level, text in blocks(markdown):
        if kind == "heading":
            document.add_heading(text.replace("*", ""), level=level - 1 if level > 1 else 0)
            continue
        style = {
            "numbered": "List Number" if level == 0 else "List Number 2",
            "bullet": "List Bullet" if level == 0 else f"List Bullet {min(level + 1, 3)}",
        }.get(kind)
        paragraph = document.add_paragraph(style=style)
        for part, bold in runs(text):
            paragraph.add_run(part).bold = bold or None
    document.save(str(path))


def build(dest):
    """Write the generated documents into `dest`; return {file name: path}."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    report = long_report_markdown()
    made = {
        "long-report.md": dest / "long-report.md",
        "long-report.pdf": dest / "long-report.pdf",
        "word-brief.docx": dest / "word-brief.docx",
    }
    made["long-report.md"].write_text(report, encoding="utf-8")
    write_pdf(report, made["long-report.pdf"])
    for source, name, write in (
        ("word-brief.source.md", "word-brief.docx", write_docx),
        ("bold-headings.md", "bold-headings.pdf", write_pdf),
        ("nested-bullets.md", "nested-bullets.docx", write_docx),
    ):
        made[name] = dest / name
        write((CORPUS_DIR / source).read_text(encoding="utf-8"), made[name])
    return made


if __name__ == "__main__":
    for name, path in build(sys.argv[1] if len(sys.argv) > 1 else "corpus-made").items():
        print(name, path)
