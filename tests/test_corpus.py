"""The importing benchmark's corpus and scorer: the ground truth is well formed and fits its
documents, and the scorer counts what it claims to. The importer's figures are measured by
bench/importing.py, never asserted here."""

import json
import re

import pytest

from bench.importing import (
    CORPUS_DIR,
    Ask,
    load_truth,
    normalise,
    score_document,
    truth_files,
)
from tests.corpus import make

PARENT = "Restore access to asylum at ports of entry"
CHILD = "CBP should accept asylum seekers who arrive at a port of entry without an appointment."
OTHER = "USCIS should train every asylum officer on gender-based persecution claims."
DHS = frozenset({"DHS", "Department of Homeland Security"})
CBP = frozenset({"CBP", "U.S. Customs and Border Protection"})
USCIS = frozenset({"USCIS", "U.S. Citizenship and Immigration Services"})

TRUTH = [
    Ask(PARENT, lead="DHS"),
    Ask(CHILD, parent=PARENT, lead="CBP"),
    Ask(OTHER, lead="USCIS", supporting=frozenset({"DHS"})),
]
PERFECT = [
    Ask(PARENT, lead=DHS),
    Ask(CHILD, parent=PARENT, lead=CBP),
    Ask(OTHER, lead=USCIS, supporting=frozenset({DHS})),
]


def test_a_perfect_import_scores_one_everywhere():
    figures = score_document(TRUTH, PERFECT).figures()

    assert figures == {
        "recall": 1.0,
        "precision": 1.0,
        "parents": 1.0,
        "owners": 1.0,
        "supporting": 1.0,
        "notes_kept": None,
    }


def test_typography_emphasis_and_closing_punctuation_do_not_matter():
    stored = [
        Ask(f"**{PARENT}.**", lead=DHS),
        Ask(CHILD.replace("asylum", "asylum\n"), parent=f"**{PARENT}.**", lead=CBP),
        Ask(OTHER.replace("-", "\u2013"), lead=USCIS, supporting=frozenset({DHS})),
    ]

    assert score_document(TRUTH, stored).figures()["recall"] == 1.0
    assert normalise("The \u201cfirst\u201d  step.") == normalise('the "first" step')


def test_a_missing_ask_lowers_recall_only():
    score = score_document(TRUTH, PERFECT[:1] + PERFECT[2:])

    assert score.recall == pytest.approx(2 / 3)
    assert score.precision == 1.0
    assert score.missed == [CHILD]


def test_an_extra_item_lowers_precision_only():
    stored = [*PERFECT, Ask("Has any of it made a single family safer?")]

    score = score_document(TRUTH, stored)

    assert score.recall == 1.0
    assert score.precision == pytest.approx(3 / 4)
    assert score.extra == ["Has any of it made a single family safer?"]


def test_an_ask_imported_twice_counts_once_and_the_copy_is_extra():
    score = score_document(TRUTH, [*PERFECT, Ask(OTHER, lead=USCIS)])

    assert (score.matched, score.precision) == (3, pytest.approx(3 / 4))


def test_one_stored_item_cannot_stand_for_two_similar_asks():
    truth = [Ask(CHILD, lead="CBP"), Ask(CHILD.replace("accept", "admit"), lead="CBP")]

    score = score_document(truth, [Ask(CHILD, lead=CBP)])

    assert (score.matched, score.recall) == (1, 0.5)


def test_an_ask_stored_with_its_explanation_is_not_the_ask():
    explained = OTHER + " Officers now receive two hours of training on such claims each year."

    score = score_document(TRUTH, [*PERFECT[:2], Ask(explained, lead=USCIS)])

    assert score.recall == pytest.approx(2 / 3)
    assert score.extra == [explained]
    assert score.missed[0].startswith(f"{OTHER} (closest: 0.")


def test_a_wrong_parent_lowers_parent_accuracy():
    stored = [PERFECT[0], Ask(CHILD, parent=None, lead=CBP), PERFECT[2]]

    figures = score_document(TRUTH, stored).figures()

    assert figures["parents"] == pytest.approx(2 / 3, abs=0.001)
    assert figures["recall"] == 1.0


def test_a_parent_that_is_not_a_true_ask_is_wrong():
    stored = [
        Ask("Recommendations"),
        Ask(PARENT, parent="Recommendations", lead=DHS),
        *PERFECT[1:],
    ]

    score = score_document(TRUTH, stored)

    assert score.parents_right == 2
    assert score.precision == pytest.approx(3 / 4)


def test_a_wrong_lead_lowers_owner_accuracy_and_supporting_is_apart():
    stored = [PERFECT[0], Ask(CHILD, parent=PARENT, lead=DHS), Ask(OTHER, lead=USCIS)]

    figures = score_document(TRUTH, stored).figures()

    assert figures["owners"] == pytest.approx(2 / 3, abs=0.001)
    assert figures["supporting"] == pytest.approx(2 / 3, abs=0.001)


def test_when_the_text_names_no_owner_only_storing_none_is_right():
    truth = [Ask(PARENT, lead=None)]

    assert score_document(truth, [Ask(PARENT, lead=None)]).owners == 1.0
    assert score_document(truth, [Ask(PARENT, lead=DHS)]).owners == 0.0


def test_notes_are_kept_when_the_stored_note_holds_the_explanation():
    truth = [Ask(PARENT, lead="DHS", note="Ports turned people away for months.")]
    kept = Ask(PARENT, lead=DHS, note="Ports turned people away for months. More in chapter 2.")

    assert score_document(truth, [kept]).notes_kept == 1.0
    assert score_document(truth, [Ask(PARENT, lead=DHS)]).notes_kept == 0.0
    assert score_document(TRUTH, PERFECT).notes_kept is None  # nothing to explain


def test_a_copy_in_another_format_shares_the_truth_of_its_source():
    meta, asks = load_truth(CORPUS_DIR / "long-report-pdf.truth.json")
    _, source_asks = load_truth(CORPUS_DIR / "long-report.truth.json")

    assert meta["filename"] == "long-report.pdf"
    assert asks == source_asks


def test_nothing_imported_scores_zero():
    score = score_document(TRUTH, [])

    assert (score.recall, score.precision, score.parents, score.owners) == (0, 0, 0, 0)


# -- the corpus itself ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return make.build(tmp_path_factory.mktemp("corpus"))


def document_text(meta, made):
    """The text the asks must come from: the hand-written source for generated files."""
    source = CORPUS_DIR / meta.get("generated_from", meta["filename"])
    text = source.read_text(encoding="utf-8")
    # Undo what a PDF copy does to text: hyphenated line ends, line breaks.
    return re.sub(r"\s+", " ", re.sub(r"-\n", "", text)).casefold()


def test_the_corpus_has_at_least_fifteen_documents_in_every_format():
    names = [json.loads(path.read_text())["filename"] for path in truth_files()]

    assert len(names) >= 15
    assert {name.rsplit(".", 1)[1] for name in names} >= {"md", "txt", "html", "pdf", "docx"}


@pytest.mark.parametrize("path", truth_files(), ids=lambda path: path.name)
def test_every_truth_file_is_valid_and_fits_its_document(path, made):
    meta = json.loads(path.read_text(encoding="utf-8"))
    if "asks_of" in meta:  # the same document in another format shares its asks
        meta["asks"] = json.loads((CORPUS_DIR / f"{meta['asks_of']}.truth.json").read_text())[
            "asks"
        ]
    asks = meta["asks"]
    texts = [ask["text"] for ask in asks]

    assert (made.get(meta["filename"]) or CORPUS_DIR / meta["filename"]).is_file()
    assert meta["shape"] and meta["publisher"] and "addressee" in meta
    assert asks and len(set(texts)) == len(texts)
    assert len({ask["code_path"] for ask in asks}) == len(asks)
    text = document_text(meta, made)
    for ask in asks:
        assert set(ask) <= {"code_path", "text", "parent", "lead", "supporting", "note"}
        assert ask["parent"] is None or ask["parent"] in texts, ask["text"]
        assert ask["lead"] is None or isinstance(ask["lead"], str)
        assert isinstance(ask["supporting"], list)
        opening = " ".join(ask["text"].split()[:4]).casefold()
        assert opening in text, ask["text"]


def test_the_long_report_is_forty_pages_with_its_asks_in_two_places_only(made):
    import pdfplumber

    with pdfplumber.open(made["long-report.pdf"]) as pdf:
        assert 35 <= len(pdf.pages) <= 45
    report = made["long-report.md"].read_text(encoding="utf-8")
    assert report.count("should") == 2 * 10 + 1  # each ask twice, plus one quoted official
    assert make.long_report_markdown() == report  # deterministic


def test_the_word_brief_uses_word_styles_and_bold_runs(made):
    import docx

    paragraphs = docx.Document(made["word-brief.docx"]).paragraphs
    styles = {paragraph.style.name for paragraph in paragraphs}

    assert {"Heading 1", "Heading 2", "List Number", "List Bullet"} <= styles
    assert any(run.bold for paragraph in paragraphs for run in paragraph.runs)
