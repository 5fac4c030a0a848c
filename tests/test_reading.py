"""Reading documents in any accepted format as Markdown (tracker.reading), and importing them."""

import io
from pathlib import Path

import docx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from fpdf import FPDF

from tests.factories import PublisherFactory
from tests.support import review_data, review_url
from tests.support.pages import local_url
from tests.support.seeds import SEEDS_DIR
from tracker.demo import DEMO_DIR
from tracker.importing import DocumentImportError, decode_source
from tracker.models import Document, ImportProposal, Recommendation
from tracker.reading import (
    UnreadableDocument,
    document_markdown,
    tidy_plain_text,
)

MB = 1024 * 1024
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


# --- Making test documents ---------------------------------------------------------------


class Report(FPDF):
    """A PDF with a running header and a page number on every page, as reports have."""

    def __init__(self, header="Women's Refugee Commission | Brief 2024"):
        super().__init__(format="Letter")
        self.running_header = header
        self.add_font("Body", "", FONT)
        self.add_font("Body", "B", BOLD_FONT)
        self.set_auto_page_break(True, margin=25)

    def header(self):
        self.set_font("Body", "", 8)
        self.cell(0, 8, self.running_header, new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def footer(self):
        self.set_y(-15)
        self.set_font("Body", "", 8)
        self.cell(0, 8, str(self.page_no()), align="C")

    def heading(self, text, size=16):
        self.set_font("Body", "B", size)
        self.multi_cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(3)

    def body(self, text, *, size=11):
        self.set_font("Body", "", size)
        self.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(3)

    def bullet(self, bold, rest="", *, indent=0):
        self.set_x(self.l_margin + 6 + indent)
        self.set_font("Body", "", 11)
        self.write(6, "•  ")
        self.set_font("Body", "B", 11)
        self.write(6, bold)
        self.set_font("Body", "", 11)
        self.write(6, rest)
        self.ln(7)

    def line(self, *parts):
        """One line of mixed runs: (text, style, size, raise) tuples."""
        x, baseline = self.l_margin, self.get_y() + 4.5
        for text, style, size, lift in parts:
            self.set_font("Body", style, size)
            self.text(x, baseline - lift, text)
            x += self.get_string_width(text)
        self.ln(6)

    def bytes(self):
        return bytes(self.output())


def brief_pdf():
    pdf = Report()
    pdf.add_page()
    pdf.heading("Protecting People on the Move", size=20)
    pdf.body(
        "In 2023 there were over two million encounters at the border. This brief sets out "
        "what the administration and Congress should do next to \ufb01nance shelters."
    )
    pdf.line(("Families wait for months in northern Mexico without shelter or legal help at the",
              "", 11, 0))  # fmt: skip
    pdf.line(("border", "", 11, 0), ("12", "", 7, 2), (" and need a recom-", "", 11, 0))
    pdf.line(("mendation that is long-term in scope.", "", 11, 0))
    pdf.ln(4)
    y = pdf.get_y()
    pdf.set_font("Body", "", 7)
    pdf.text(pdf.l_margin, 250, "12 UNHCR, Global Trends 2023, table 4.")
    pdf.set_y(y)
    pdf.heading("1. Restore access to asylum")
    pdf.body("We recommend that DHS:")
    pdf.bullet("Reopen ports of entry to asylum seekers.", " Lines now stretch for miles.")
    pdf.bullet("Fund USCIS to hire more asylum officers.")
    pdf.bullet("Train them in child-sensitive interviewing.", indent=8)
    pdf.add_page()
    pdf.heading("2. Expand refugee resettlement")
    pdf.body("Congress should:")
    pdf.bullet("Increase refugee admissions from Latin America.")
    pdf.bullet("Fund the UN Refugee Agency to expand registration.", " It covers three cities.")
    pdf.add_page()
    pdf.heading("3. Work with Mexico")
    pdf.body("The State Department should:")
    pdf.bullet("Support COMAR in processing asylum claims in Mexico.")
    return pdf.bytes()


def brief_docx():
    document = docx.Document()
    document.add_heading("Protecting People on the Move", 0)
    document.add_paragraph("This brief sets out what the administration should do next.")
    document.add_heading("1. Restore access to asylum", 1)
    document.add_paragraph("We recommend that DHS:")
    item = document.add_paragraph(style="List Bullet")
    item.add_run("Reopen ports of entry to asylum seekers.").bold = True
    item.add_run(" Lines now stretch for miles.")
    document.add_paragraph(style="List Bullet").add_run(
        "Fund USCIS to hire more asylum officers."
    ).bold = True
    document.add_heading("2. Expand refugee resettlement", 1)
    document.add_paragraph("Congress should:")
    document.add_paragraph(style="List Bullet").add_run(
        "Increase refugee admissions from Latin America."
    ).bold = True
    return docx_bytes(document)


def docx_bytes(document):
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- PDF ---------------------------------------------------------------------------------


def test_a_pdf_reads_as_markdown_with_its_structure():
    markdown = document_markdown(brief_pdf(), filename="brief.pdf")
    assert markdown.startswith("# Protecting People on the Move\n")
    assert "Congress should do next to finance shelters." in markdown  # no "ﬁ" ligature
    assert "## 1. Restore access to asylum" in markdown
    assert "## 3. Work with Mexico" in markdown
    assert "- **Reopen ports of entry to asylum seekers.** Lines now stretch for miles." in (
        markdown
    )
    assert (
        "- **Fund USCIS to hire more asylum officers.**\n"
        "  - **Train them in child-sensitive interviewing.**\n"
    ) in markdown
    # Hard-wrapped lines join into one paragraph, the split word mended, "long-term" kept.
    assert (
        "legal help at the border and need a recommendation that is long-term in scope."
    ) in markdown
    # Running header, page numbers and the footnote marker are gone.
    assert "Brief 2024" not in markdown and "Global Trends" not in markdown
    assert "border12" not in markdown and "12" not in markdown.replace("2023", "")
    assert "\n2\n" not in markdown and "\n3\n" not in markdown


@pytest.mark.django_db
def test_a_pdf_of_numbered_headings_and_bold_bullets_imports_through_the_command(tmp_path):
    path = tmp_path / "brief.pdf"
    path.write_bytes(brief_pdf())
    stdout = io.StringIO()
    call_command(
        "import_document", str(path), "--code", "WRC-2024", "--publisher", "WRC", stdout=stdout
    )
    document = Document.objects.get(code="WRC-2024")
    texts = list(document.recommendations.values_list("text", flat=True))
    assert "Reopen ports of entry to asylum seekers." in " ".join(texts)
    assert any("Support COMAR" in text for text in texts)
    assert not any("Brief 2024" in text or "recom-" in text for text in texts)
    assert document.recommendations.filter(parent=None).count() == 3


def test_a_ruled_table_in_a_pdf_becomes_a_pipe_table():
    pdf = Report()
    pdf.add_page()
    pdf.heading("Recommendations for Executive Action")
    pdf.body("GAO is making two recommendations.")
    pdf.set_font("Body", "", 10)
    with pdf.table(col_widths=(40, 120)) as table:
        for row in (
            ("Agency", "Recommendation"),
            ("ICE", "The Director of ICE should publish detention standards. (Recommendation 1)"),
            ("CBP", "The Commissioner of CBP should track wait times. (Recommendation 2)"),
        ):
            cells = table.row()
            for text in row:
                cells.cell(text)
    pdf.body("Agency comments follow.")
    markdown = document_markdown(pdf.bytes(), filename="gao.pdf")
    assert (
        "GAO is making two recommendations.\n\n"
        "| Agency | Recommendation |\n"
        "| --- | --- |\n"
        "| ICE | The Director of ICE should publish detention standards. (Recommendation 1) |\n"
        "| CBP | The Commissioner of CBP should track wait times. (Recommendation 2) |\n\n"
        "Agency comments follow."
    ) in markdown


def test_a_pdf_without_a_text_layer_is_refused():
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 150, style="F")
    with pytest.raises(UnreadableDocument, match=r"no text layer \(a scanned image\?\): scan.pdf"):
        document_markdown(bytes(pdf.output()), filename="scan.pdf")


def test_an_encrypted_pdf_is_refused():
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "Secret recommendations")
    with pytest.raises(DocumentImportError, match=r"locked\.pdf is encrypted"):
        decode_source(bytes(pdf.output()), filename="locked.pdf")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "broken.pdf is not a readable PDF"),
        ("broken.docx", b"PK\x03\x04\x14\x00garbage", "broken.docx is not a readable Word"),
        ("renamed.docx", b"Not a zip at all", "renamed.docx is not a readable Word"),
    ],
)
def test_a_corrupt_pdf_or_word_file_is_refused(name, content, reason):
    with pytest.raises(DocumentImportError, match=reason):
        decode_source(content, filename=name)


def test_a_40_page_pdf_reads_every_page():
    # Its speed is measured by bench/importing.py (the corpus' 40-page PDF), not here.
    pdf = Report()
    for chapter in range(1, 41):
        pdf.add_page()
        pdf.heading(f"{chapter}. Chapter {chapter}")
        for _ in range(6):
            pdf.body("Background on the asylum system and what it needs to work again. " * 5)
        pdf.bullet(f"The administration should act on chapter {chapter}.", " A reason follows.")
    markdown = document_markdown(pdf.bytes(), filename="long.pdf")
    assert [f"# {n}. Chapter {n}" in markdown for n in range(1, 41)] == [True] * 40
    assert [f"act on chapter {n}." in markdown for n in range(1, 41)] == [True] * 40


# --- DOCX --------------------------------------------------------------------------------


def test_a_word_document_reads_as_markdown():
    document = docx.Document()
    document.add_heading("Asylum at the Border", 0)
    document.add_heading("Our recommendations", 1)
    document.add_paragraph("Restore access to asylum.", style="List Number")
    document.add_paragraph("Reopen ports of entry.", style="List Bullet 2")
    bold = document.add_paragraph(style="List Bullet 2")
    bold.add_run("Fund").bold = True
    bold.add_run(" ")
    bold.add_run("interpreters").bold = True
    bold.add_run(" for every child.")
    document.add_paragraph("Expand resettlement.", style="List Number")
    document.add_heading("Who does what", 2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Agency", "Recommendation"
    table.cell(1, 0).text, table.cell(1, 1).text = "DHS", "Restore | reopen"
    markdown = document_markdown(docx_bytes(document), filename="brief.docx")
    assert markdown == (
        "# Asylum at the Border\n\n"
        "## Our recommendations\n\n"
        "1. Restore access to asylum.\n"
        "   - Reopen ports of entry.\n"
        "   - **Fund interpreters** for every child.\n"
        "2. Expand resettlement.\n\n"
        "### Who does what\n\n"
        "| Agency | Recommendation |\n"
        "| --- | --- |\n"
        "| DHS | Restore \\| reopen |\n"
    )


def test_a_body_paragraph_after_a_word_list_ends_the_list_and_an_indented_one_continues_it():
    document = docx.Document()
    document.add_paragraph("Reopen ports of entry.", style="List Bullet")
    document.add_paragraph("Ports closed in 2020.").paragraph_format.left_indent = docx.shared.Cm(1)
    document.add_paragraph("Fund interpreters.", style="List Bullet")
    document.add_paragraph("Published by the Border Project.")
    assert document_markdown(docx_bytes(document), filename="b.docx") == (
        "- Reopen ports of entry.\n"
        "  Ports closed in 2020.\n"
        "- Fund interpreters.\n\n"
        "Published by the Border Project.\n"
    )


def numbered(document, text, *, num_id, level=0):
    """A paragraph numbered as Word numbers them: List Paragraph style plus numbering."""
    paragraph = document.add_paragraph(text, style="List Paragraph")
    numbering = paragraph._p.get_or_add_pPr().get_or_add_numPr()
    numbering.get_or_add_ilvl().val = level
    numbering.get_or_add_numId().val = num_id
    return paragraph


def test_word_list_numbering_nests_by_level():
    document = docx.Document()
    decimal, bullet = 5, 1  # numbering definitions in python-docx's default template
    numbered(document, "Restore access to asylum.", num_id=decimal)
    numbered(document, "Reopen ports of entry.", num_id=bullet, level=1)
    numbered(document, "Expand resettlement.", num_id=decimal)
    assert document_markdown(docx_bytes(document), filename="b.docx") == (
        "1. Restore access to asylum.\n   - Reopen ports of entry.\n2. Expand resettlement.\n"
    )


@pytest.mark.django_db
def test_a_word_document_imports_through_the_command(tmp_path):
    path = tmp_path / "brief.docx"
    path.write_bytes(brief_docx())
    call_command(
        "import_document", str(path), "--code", "WRC-2024", "--publisher", "WRC",
        stdout=io.StringIO(),
    )  # fmt: skip
    document = Document.objects.get(code="WRC-2024")
    texts = " ".join(document.recommendations.values_list("text", flat=True))
    assert "Fund USCIS to hire more asylum officers." in texts
    assert "Increase refugee admissions from Latin America." in texts
    assert document.recommendations.filter(parent=None).count() == 2


@pytest.mark.django_db
def test_staff_upload_a_word_document_in_the_admin(admin_client):
    form = {
        "code": "WRC-2024",
        "title": "Brief",
        "publisher": PublisherFactory(name="WRC").pk,
        "file": SimpleUploadedFile("brief.docx", brief_docx()),
    }
    response = admin_client.post(reverse("admin:tracker_document_import"), form)
    assert response.status_code == 302
    proposal = ImportProposal.objects.get()
    admin_client.post(review_url(proposal), review_data(proposal))
    document = Document.objects.get(code="WRC-2024")
    assert document.recommendations.filter(parent=None).count() == 2


# --- HTML --------------------------------------------------------------------------------

PAGE = b"""<!DOCTYPE html>
<html><head><title>Brief</title><style>p{color:red}</style>
<script>alert("x")</script></head>
<body>
<header><a href="/">Home</a> <a href="/donate">Donate</a></header>
<nav><ul><li>About</li><li>Contact</li></ul></nav>
<main>
<h1>Protecting People</h1>
<p>In 2023 there were <b>two million</b> encounters.<sup>3</sup></p>
<h2>Recommendations</h2>
<ol>
  <li><strong>Restore asylum.</strong> At every port.
    <ul><li>Reopen ports of entry.</li><li>Hire officers.</li></ul>
  </li>
  <li>Expand resettlement.<br>Soon.</li>
</ol>
<table><tr><th>Agency</th><th>Ask</th></tr><tr><td>DHS</td><td>Act</td></tr></table>
</main>
<footer>Copyright 2024</footer>
<aside>Sign up</aside><form><input name="q"></form>
</body></html>"""


def test_a_web_page_reads_as_markdown_without_its_furniture():
    assert document_markdown(PAGE, filename="brief.html") == (
        "# Protecting People\n\n"
        "In 2023 there were **two million** encounters.\n\n"
        "## Recommendations\n\n"
        "1. **Restore asylum.** At every port.\n"
        "   - Reopen ports of entry.\n"
        "   - Hire officers.\n"
        "2. Expand resettlement.\n"
        "   Soon.\n\n"
        "| Agency | Ask |\n"
        "| --- | --- |\n"
        "| DHS | Act |\n"
    )


def test_a_web_page_in_a_legacy_charset_reads_as_it_declares():
    page = '<html><head><meta charset="windows-1252"></head><body><p>Caf\xe9 \u201cpolicy\u201d'
    markdown = document_markdown(page.encode("cp1252"), filename="page.html")
    assert markdown == "Caf\xe9 \u201cpolicy\u201d\n"


def test_a_web_page_loads_nothing_it_references(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    page = (
        f'<!DOCTYPE html [<!ENTITY x SYSTEM "file://{secret}">]>'
        f'<html><body><p>Hello &x;</p><img src="file://{secret}"></body></html>'
    ).encode()
    assert "SECRET" not in document_markdown(page, filename="page.html")


# --- Plain text --------------------------------------------------------------------------

COPIED = """\
WRC Brief | March 2024

Families wait for months in northern Mexico without shelter or legal help at
the border.12 They need a recommendation that is realistic and long-term in
scope, a long-term plan¹ for shelter and a working asylum system: the recom-
mendation we make here.

1. Restore access to asylum at ports of entry.
2. Fund USCIS to hire more asylum officers.

7

WRC Brief | March 2024

The administration should act now, because the asylum system is overwhelmed
and families cannot wait.

8

WRC Brief | March 2024

Congress should also fund legal representation.
"""


def test_text_copied_out_of_a_pdf_is_tidied():
    assert tidy_plain_text(COPIED) == (
        "Families wait for months in northern Mexico without shelter or legal help at the "
        "border. They need a recommendation that is realistic and long-term in scope, a "
        "long-term plan for shelter and a working asylum system: the recommendation we make "
        "here.\n"
        "\n"
        "1. Restore access to asylum at ports of entry.\n"
        "2. Fund USCIS to hire more asylum officers.\n"
        "\n"
        "The administration should act now, because the asylum system is overwhelmed and "
        "families cannot wait.\n"
        "\n"
        "Congress should also fund legal representation.\n"
    )


def test_a_heading_repeated_in_each_chapter_is_not_a_running_header():
    chapter = "To Congress\n\nFund more immigration judges now.\n\n"
    text = "# Report\n\n" + chapter * 3
    assert tidy_plain_text(text) == text


def test_clean_text_is_left_as_it_is():
    for path in [*SEEDS_DIR.glob("*.txt"), Path("tests/samples/short-op-ed.txt")]:
        text = path.read_text()
        assert tidy_plain_text(text) == text
    sample = "## 1. Title\n\nA paragraph.\n\n- an item\n- another\n"
    assert tidy_plain_text(sample) == sample


def test_markdown_and_csv_pass_through_unchanged():
    markdown = Path("tests/samples/messy-brief.md").read_bytes()
    assert document_markdown(markdown, filename="brief.md") == markdown.decode()
    csv = (DEMO_DIR / "hill-2021.csv").read_bytes()
    assert document_markdown(csv, filename="hill.csv") == csv.decode()


# --- Size and URLs -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_50_mb_file_is_refused_before_reading_and_writes_nothing(tmp_path):
    path = tmp_path / "huge.pdf"
    path.write_bytes(b"%PDF-1.7\n" + b"0" * (50 * MB))
    with pytest.raises(CommandError, match=r"50\.0 MB; documents are limited to 20 MB"):
        call_command("import_document", str(path), "--code", "BIG-1", "--publisher", "Org")
    assert not Document.objects.exists()
    with pytest.raises(UnreadableDocument, match="limited to 20 MB"):
        document_markdown(b"x" * (21 * MB), filename="big.txt")


@pytest.mark.django_db
def test_a_document_imports_from_a_url(allow_local):
    allow_local.expect_request("/brief.pdf").respond_with_data(
        brief_pdf(), content_type="application/pdf"
    )
    allow_local.expect_request("/page").respond_with_data(
        brief_docx(), content_type="application/vnd.openxmlformats-officedocument."
        "wordprocessingml.document",
    )  # fmt: skip
    url = local_url(allow_local, "/brief.pdf")
    call_command(
        "import_document", url, "--code", "WRC-2024", "--publisher", "WRC", stdout=io.StringIO()
    )
    document = Document.objects.get(code="WRC-2024")
    assert document.url == url
    assert document.recommendations.filter(parent=None).count() == 3
    call_command(
        "import_document", local_url(allow_local, "/page"), "--code", "WRC-2025",
        "--publisher", "WRC", stdout=io.StringIO(),
    )  # fmt: skip
    assert Document.objects.get(code="WRC-2025").recommendations.filter(parent=None).count() == 2


@pytest.mark.django_db
def test_a_url_that_answers_404_is_refused(allow_local):
    allow_local.expect_request("/gone").respond_with_data("Not here", status=404)
    with pytest.raises(CommandError, match=r"Could not fetch .*/gone: HTTP 404"):
        call_command(
            "import_document", local_url(allow_local, "/gone"), "--code", "X-1",
            "--publisher", "Org",
        )  # fmt: skip
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_a_web_page_with_no_asks_is_refused_and_writes_nothing(allow_local):
    allow_local.expect_request("/about").respond_with_data(
        "<html><body><nav>Menu</nav><p>We are an organisation.</p></body></html>",
        content_type="text/html; charset=utf-8",
    )
    with pytest.raises(CommandError, match="Unrecognised document"):
        call_command(
            "import_document", local_url(allow_local, "/about"), "--code", "X-1",
            "--publisher", "Org",
        )  # fmt: skip
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_a_web_page_with_numbered_sections_imports_from_a_url(allow_local):
    allow_local.expect_request("/brief").respond_with_data(
        "<html><body><header>Site</header><h1>Brief</h1>"
        "<h2>1. Restore asylum</h2><p>We recommend that DHS:</p>"
        "<ul><li><strong>Reopen ports of entry to asylum seekers.</strong> Now.</li>"
        "<li><strong>Fund USCIS to hire more asylum officers.</strong></li></ul>"
        "<h2>2. Resettle refugees</h2><p>Congress should:</p>"
        "<ul><li><strong>Increase refugee admissions from Latin America.</strong></li></ul>"
        "<footer>Copyright</footer></body></html>",
        content_type="text/html; charset=utf-8",
    )
    call_command(
        "import_document", local_url(allow_local, "/brief"), "--code", "WRC-2024",
        "--publisher", "WRC", stdout=io.StringIO(),
    )  # fmt: skip
    texts = " ".join(Recommendation.objects.values_list("text", flat=True))
    assert "Fund USCIS to hire more asylum officers." in texts
    assert "Copyright" not in texts and "Site" not in texts
    assert Recommendation.objects.filter(parent=None).count() == 2
