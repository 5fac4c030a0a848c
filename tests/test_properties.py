"""Property tests (hypothesis) for what reads untrusted text: the document importer and the
text normaliser of watched pages. Derandomized, so CI runs the same examples every time."""

import unicodedata

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tracker import backup
from tracker.extracting import normalise_text
from tracker.importing import (
    CSV,
    MARKDOWN,
    OP_ED,
    DocumentImportError,
    import_document,
    parse_document,
)

examples = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# Lines that steer the parsers into their interesting paths, mixed with arbitrary text.
WORDS = st.sampled_from(
    ["The", "Department", "should", "must", "USCIS", "Congress", "refugees", "fund", "**",
     "__", "#", "-", ",", ";", '"', "1.", "2.1", "First,", "Second,", "Finally,", "By"]
)  # fmt: skip
SENTENCE = st.lists(WORDS | st.text(max_size=12), min_size=1, max_size=14).map(" ".join)
LINE = st.one_of(
    SENTENCE,
    st.text(max_size=40),
    st.builds("## {}. {}".format, st.integers(0, 12), SENTENCE),
    st.builds("**{}. {}**".format, st.integers(0, 12), SENTENCE),
    st.builds("- **{}** {}".format, SENTENCE, SENTENCE),
    st.builds("{}, {}".format, st.sampled_from(["First", "Second", "Third", "Finally"]), SENTENCE),
    st.just("---"),
    st.just(""),
    st.just("code,parent_code,title,text,lead,supporting,themes,priority"),
    st.builds(
        "{},{},{},{},{}".format,
        st.text(max_size=10),
        st.text(max_size=10),
        SENTENCE,
        SENTENCE,
        st.sampled_from(["USCIS", "Congress", "Nobody", ""]),
    ),
)
LINES = st.lists(LINE, max_size=25).map("\n".join)
# Documents shaped like each format, with arbitrary wording: most of these parse, so the
# import goes on to write (and must then roll back whatever a later row refuses).
MARKDOWN_DOCUMENT = st.builds(
    "# {}\n\n## 1. {}\n\n{}\n\n- **{}** {}\n\n## {}. {}\n\n{}".format,
    SENTENCE, SENTENCE, LINES, SENTENCE, SENTENCE, st.integers(0, 3), SENTENCE, LINES,
)  # fmt: skip
OP_ED_DOCUMENT = st.builds(
    "{}\n\nBy Jane Doe\n\n{}\n\nFirst, {}\n\n{}\n\nSecond, {}\n\n{}".format,
    SENTENCE, LINES, SENTENCE, LINES, SENTENCE, LINES,
)  # fmt: skip
CSV_ROW = st.builds(
    "{},{},{},{},{}".format,
    st.sampled_from(["PROP-1-1", "PROP-1-2", "PROP-1-1.1", "", "x"]),
    st.sampled_from(["", "PROP-1-1", "PROP-1-9"]),
    SENTENCE.map(lambda text: text.replace(",", " ")),
    st.sampled_from(["USCIS", "Congress", "Nobody", ""]),
    st.sampled_from(["yes", "no", "maybe", ""]),
)
CSV_DOCUMENT = st.lists(CSV_ROW, min_size=1, max_size=6).map(
    lambda rows: "code,parent_code,text,lead,priority\n" + "\n".join(rows)
)
DOCUMENT = st.one_of(LINES, MARKDOWN_DOCUMENT, OP_ED_DOCUMENT, CSV_DOCUMENT)


def row_counts():
    return {m._meta.label_lower: m._default_manager.count() for m in backup.tracked_models()}


@examples
@given(text=DOCUMENT, fmt=st.sampled_from([MARKDOWN, OP_ED, CSV]))
def test_every_parser_returns_a_document_or_a_clear_import_error(text, fmt):
    try:
        parsed = parse_document(text, fmt=fmt, document_code="PROP-1")
    except DocumentImportError as error:
        assert str(error).strip()  # a message to show, never an empty one
        event("refused")
        return
    event("parsed")
    assert parsed.recommendations
    assert all(item.code and item.text.strip() for item in parsed.recommendations)


@pytest.mark.django_db
@examples
@given(source=DOCUMENT | st.binary(max_size=300), name=st.sampled_from(["", "a.md", "a.csv"]))
def test_any_input_imports_or_is_refused_without_writing_anything(source, name):
    before = row_counts()
    try:
        result = import_document(source, code="PROP-1", publisher="Property tests", filename=name)
    except DocumentImportError as error:
        assert str(error).strip()
        assert row_counts() == before  # nothing half-written
        event("refused")
        return
    event("imported")
    imported = {r.code for r in [*result.created, *result.updated, *result.unchanged]}
    assert imported
    assert imported <= set(result.document.recommendations.values_list("code", flat=True))


@examples
@given(text=st.text())
def test_normalising_twice_changes_nothing(text):
    once = normalise_text(text)
    assert normalise_text(once) == once


@examples
@given(text=st.text())
def test_normalised_text_has_single_spaces_and_no_blank_lines(text):
    normalised = normalise_text(text)
    for line in normalised.split("\n") if normalised else []:
        assert line and line == line.strip()
        assert "  " not in line
        assert all(char == " " or not char.isspace() for char in line)
        assert "\x00" not in line


@examples
@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs", "Nd"])))
def test_text_without_digits_keeps_every_non_space_character(text):
    # Only timestamp lines and NUL characters are dropped, and every timestamp has a digit.
    expected = unicodedata.normalize("NFKC", text.replace("\x00", ""))
    if any(char.isdigit() for char in expected):  # NFKC turns some symbols into digits
        return
    assert "".join(normalise_text(text).split()) == "".join(expected.split())


SPACE = st.text(alphabet=" \t\u00a0\u2003", min_size=1, max_size=3)
WORD = st.text(alphabet=st.characters(categories=["L", "P"]), min_size=1, max_size=8)


@examples
@given(lines=st.lists(st.lists(st.tuples(WORD, SPACE), min_size=1, max_size=6), max_size=6))
def test_spacing_and_blank_lines_do_not_change_the_text(lines):
    tidy = "\n".join(" ".join(word for word, _ in line) for line in lines)
    messy = "\n\n \n".join("".join(space + word for word, space in line) + "\t " for line in lines)
    assert normalise_text(messy) == normalise_text(tidy)


STAMPS = st.sampled_from(
    ["Last updated: 2024-08-01 10:32", "Page last reviewed: August 1, 2024",
     "Updated 3 Sep 2024 at 9:15 am EDT", "01/08/2024", "Printed on Monday, July 1, 2024"]
)  # fmt: skip


@examples
@given(text=st.text(), stamp=STAMPS, where=st.integers(0, 50))
def test_a_timestamp_line_anywhere_does_not_change_the_text(text, stamp, where):
    lines = text.splitlines()
    where = min(where, len(lines))
    stamped = "\n".join([*lines[:where], stamp, *lines[where:]])
    assert normalise_text(stamped) == normalise_text("\n".join(lines))
