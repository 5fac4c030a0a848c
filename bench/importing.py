"""Score the importer on the corpus in tests/corpus: recall, precision, parents and owners.

Each document is imported as a user would import it (its bytes and file name, nothing else
but a code, the publisher and the addressee its truth file gives) into a scratch SQLite
database, and the stored recommendations are read back and matched to the hand-written ground
truth (tests/corpus/<name>.truth.json):

- an ask matches a stored recommendation when their normalised texts have a SequenceMatcher
  ratio of at least 0.85, one to one, best pairs first;
- recall is matched asks over true asks, precision matched over stored recommendations;
- parent accuracy: of matched asks, those whose stored parent is the recommendation matched to
  the true parent (or both are top-level);
- notes kept (reported, no goal): of matched asks the document explains in a paragraph,
  those whose stored note holds that explanation;
- owner accuracy: of matched asks, those whose stored lead is the true lead (a truth lead of
  null means the text names no owner: right only when none is stored, as the importer should
  flag it rather than guess); supporting owners (the same set) are reported apart.

A document the importer refuses counts as nothing found, and the refusal is printed. The PDF,
the Word file and the long report are made on the fly by tests/corpus/make.py.

Memory: no second size is run here. What grows for a user is the number of documents
imported over a process's life, and that is measured already: the whole corpus is imported
again MEMORY_ROUNDS times under new codes, printing the Python heap after each round (flat
means nothing is kept from one import to the next). Each document is read whole (a user's
upload, within the upload limit) and the corpus documents are of fixed sizes, so a second
size would only time a larger file. The run's peak memory (RSS) is printed as well.

Usage: .venv/bin/python bench/importing.py [--only NAME]
The last line printed is one JSON object of the figures.
"""

import argparse
import gc
import inspect
import json
import os
import re
import resource
import sys
import tempfile
import time
import tracemalloc
import unicodedata
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CORPUS_DIR = ROOT / "tests" / "corpus"
# Two texts are the same ask from this SequenceMatcher ratio of their normalised forms.
MATCH_RATIO = 0.85
# The goals, printed beside the figures (never asserted).
GOALS = {"recall": 0.95, "precision": 0.95, "parents": 0.9, "owners": 0.85}

# Typographic variants that say the same thing.
TYPOGRAPHY = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"}
)
# Markdown emphasis and code markers, which are presentation, not text.
MARKUP_RE = re.compile(r"[*_`]+")
WHITESPACE_RE = re.compile(r"\s+")


# -- scoring (pure: no Django) ---------------------------------------------------------------


def normalise(text):
    """Return `text` as compared: NFKC, straight quotes, no emphasis, one space, casefolded,
    without closing punctuation."""
    text = unicodedata.normalize("NFKC", text or "").translate(TYPOGRAPHY)
    text = WHITESPACE_RE.sub(" ", MARKUP_RE.sub("", text)).strip()
    return text.rstrip(" .;:,").casefold()


def similarity(a, b):
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < MATCH_RATIO or matcher.quick_ratio() < MATCH_RATIO:
        return 0.0
    return matcher.ratio()


@dataclass(frozen=True)
class Ask:
    """One ask, true or stored: its text, its parent's text, and its owners' labels."""

    text: str
    parent: str | None = None
    lead: str | None = None
    supporting: frozenset = frozenset()
    # In the truth, how the note should begin (if the document explains the ask).
    note: str = ""


@dataclass
class Score:
    truths: int = 0
    predictions: int = 0
    matched: int = 0
    parents_right: int = 0
    leads_right: int = 0
    supporting_right: int = 0
    notes: int = 0
    notes_right: int = 0
    # For the report: true asks not found, stored texts matching nothing, wrong parents/leads.
    missed: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    wrong: list = field(default_factory=list)

    def add(self, other):
        for name in ("truths", "predictions", "matched", "parents_right", "leads_right"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.supporting_right += other.supporting_right
        self.notes += other.notes
        self.notes_right += other.notes_right

    @property
    def recall(self):
        return self.matched / self.truths if self.truths else 1.0

    @property
    def precision(self):
        return self.matched / self.predictions if self.predictions else 0.0

    @property
    def parents(self):
        return self.parents_right / self.matched if self.matched else 0.0

    @property
    def owners(self):
        return self.leads_right / self.matched if self.matched else 0.0

    @property
    def supporting(self):
        return self.supporting_right / self.matched if self.matched else 0.0

    @property
    def notes_kept(self):
        return self.notes_right / self.notes if self.notes else None

    def figures(self):
        names = ("recall", "precision", "parents", "owners", "supporting", "notes_kept")
        return {
            name: None if getattr(self, name) is None else round(getattr(self, name), 3)
            for name in names
        }


def match_asks(truths, predictions):
    """Return {truth index: prediction index}, one to one, best ratios first, each ≥ 0.85."""
    normal_truths = [normalise(ask.text) for ask in truths]
    normal_predictions = [normalise(ask.text) for ask in predictions]
    pairs = []
    for t, truth in enumerate(normal_truths):
        for p, prediction in enumerate(normal_predictions):
            ratio = similarity(truth, prediction)
            if ratio >= MATCH_RATIO:
                pairs.append((ratio, t, p))
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    matches, taken = {}, set()
    for _ratio, t, p in pairs:
        if t not in matches and p not in taken:
            matches[t] = p
            taken.add(p)
    return matches


def same_agency(label, names):
    """Whether the truth's agency `label` is among the stored agency's `names` (any case)."""
    return label is not None and normalise(label) in {normalise(name) for name in names}


def score_document(truths, predictions):
    """Score stored asks against true ones. Owners on predictions are sets of names an agency
    goes by (acronym, name, aliases): `lead` one such frozenset, `supporting` a frozenset of
    them; parents are texts, matched to the truth through the same pairing."""
    matches = match_asks(truths, predictions)
    truth_by_text = {normalise(ask.text): t for t, ask in enumerate(truths)}
    prediction_by_text = {normalise(ask.text): p for p, ask in enumerate(predictions)}
    score = Score(truths=len(truths), predictions=len(predictions), matched=len(matches))
    for t, p in matches.items():
        truth, prediction = truths[t], predictions[p]
        true_parent = truth_by_text.get(normalise(truth.parent)) if truth.parent else None
        stored_parent = (
            prediction_by_text.get(normalise(prediction.parent)) if prediction.parent else None
        )
        if true_parent is None and stored_parent is None:
            parent_right = prediction.parent is None
        else:
            parent_right = true_parent is not None and matches.get(true_parent) == stored_parent
        score.parents_right += parent_right
        if truth.lead is None:  # the text names no owner: right only if none is guessed
            lead_right = prediction.lead is None
        else:
            lead_right = prediction.lead is not None and same_agency(truth.lead, prediction.lead)
        score.leads_right += lead_right
        supporting_right = len(truth.supporting) == len(prediction.supporting) and all(
            any(same_agency(label, names) for names in prediction.supporting)
            for label in truth.supporting
        )
        score.supporting_right += supporting_right
        if truth.note:  # the stored note should hold the document's explanation
            score.notes += 1
            score.notes_right += normalise(truth.note) in normalise(prediction.note)
        if not parent_right:
            score.wrong.append(f"parent of {truth.text[:60]!r}")
        if not lead_right:
            shown = sorted(prediction.lead, key=len)[0] if prediction.lead else None
            score.wrong.append(f"lead {shown} (want {truth.lead}) of {truth.text[:50]!r}")
        if not supporting_right:
            shown = sorted(
                next((t for t in truth.supporting if same_agency(t, names)), min(names, key=len))
                for names in prediction.supporting
            )
            score.wrong.append(
                f"supporting {shown} (want {sorted(truth.supporting)}) of {truth.text[:40]!r}"
            )
    taken = set(matches.values())
    score.extra = [predictions[p].text for p in range(len(predictions)) if p not in taken]
    score.missed = [
        truths[t].text + near_miss(truths[t].text, score.extra)
        for t in range(len(truths))
        if t not in matches
    ]
    return score


def near_miss(text, candidates):
    """Return ' (closest: 0.72 "…")' for the unmatched stored text most like `text`, to show
    why an ask was missed; empty when nothing comes close."""
    scored = [
        (SequenceMatcher(None, normalise(text), normalise(other), autojunk=False).ratio(), other)
        for other in candidates
    ]
    ratio, closest = max(scored, default=(0.0, ""))
    return f" (closest: {ratio:.2f} {closest[:60]!r})" if ratio >= 0.5 else ""


def load_truth(path):
    """Return a truth file's metadata and its asks; a copy of a document in another format
    names the truth file it shares its asks with ("asks_of")."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "asks_of" in data:
        data = {**json.loads((CORPUS_DIR / f"{data['asks_of']}.truth.json").read_text()), **data}
    asks = [
        Ask(
            text=ask["text"],
            parent=ask.get("parent"),
            lead=ask.get("lead"),
            supporting=frozenset(ask.get("supporting", ())),
            note=ask.get("note", ""),
        )
        for ask in data["asks"]
    ]
    return data, asks


def truth_files():
    return sorted(CORPUS_DIR.glob("*.truth.json"))


# -- importing (Django) -----------------------------------------------------------------------


def setup_django():
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    os.environ["SECRET_KEY"] = "benchmark-only-secret-key-" + "x" * 30
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def agency_names(agency):
    names = {agency.name, agency.acronym, *agency.aliases.splitlines()}
    return frozenset(name.strip() for name in names if name and name.strip())


def find_agency(label):
    from django.db.models import Q

    from tracker.models import Agency

    return Agency.objects.filter(Q(acronym__iexact=label) | Q(name__iexact=label)).first()


def import_file(path, *, code, meta):
    """Import the file as a user would; return its stored asks. Arguments the importer of the
    day does not take (an addressee, say) are left out rather than failing."""
    from tracker import importing
    from tracker.directory import ensure_agency_directory
    from tracker.importing import import_document
    from tracker.models import Recommendation

    ensure_agency_directory()
    wanted = {
        "code": code,
        "filename": path.name,
        "publisher": meta.get("publisher") or "Corpus",
        "addressee": find_agency(meta["addressee"]) if meta.get("addressee") else None,
    }
    accepted = {
        *inspect.signature(import_document).parameters,
        # import_document passes its other options to save_import.
        *(
            inspect.signature(importing.save_import).parameters
            if hasattr(importing, "save_import")
            else ()
        ),
    }
    import_document(
        path.read_bytes(), **{k: v for k, v in wanted.items() if k in accepted and v is not None}
    )
    stored = (
        Recommendation.objects.filter(document__code=code)
        .select_related("parent")
        .prefetch_related("ownerships__agency")
        .order_by("position", "pk")
    )
    asks = []
    for recommendation in stored:
        leads = [o.agency for o in recommendation.ownerships.all() if o.role == "lead"]
        supporting = [o.agency for o in recommendation.ownerships.all() if o.role != "lead"]
        asks.append(
            Ask(
                text=recommendation.text,
                parent=recommendation.parent.text if recommendation.parent else None,
                lead=agency_names(leads[0]) if leads else None,
                supporting=frozenset(map(agency_names, supporting)),
                note=recommendation.note,
            )
        )
    return asks


def run(only=None):
    from tests.corpus import make

    generated = Path(tempfile.mkdtemp())
    made = make.build(generated)
    total = Score()
    rows, refusals, timings = [], {}, {}
    for truth_path in truth_files():
        name = truth_path.name.removesuffix(".truth.json")
        if only and name != only:
            continue
        meta, truths = load_truth(truth_path)
        path = made.get(meta["filename"]) or CORPUS_DIR / meta["filename"]
        started = time.perf_counter()
        try:
            predictions = import_file(path, code=f"CORPUS-{name.upper()}", meta=meta)
        except Exception as error:  # any refusal or crash counts as nothing found
            predictions = []
            refusals[name] = f"{type(error).__name__}: {error}"
        timings[name] = time.perf_counter() - started
        score = score_document(truths, predictions)
        total.add(score)
        rows.append((name, meta.get("shape", ""), score))
    return rows, total, refusals, timings


# Rounds of importing the whole corpus again under new codes, to see whether memory grows.
MEMORY_ROUNDS = 4


def memory_by_round(rounds=MEMORY_ROUNDS):
    """Import every corpus document `rounds` times over (new documents each time) and return
    the Python heap in use after each round, in MB (tracemalloc, after a collection). Flat
    figures mean memory does not grow with the number of documents imported."""
    from tests.corpus import make

    made = make.build(Path(tempfile.mkdtemp()))
    documents = []
    for truth_path in truth_files():
        meta, _truths = load_truth(truth_path)
        documents.append((meta, made.get(meta["filename"]) or CORPUS_DIR / meta["filename"]))
    tracemalloc.start()
    heap = []
    for number in range(rounds):
        for index, (meta, path) in enumerate(documents):
            import_file(path, code=f"MEM-{number}-{index}", meta=meta)
        gc.collect()
        heap.append(round(tracemalloc.get_traced_memory()[0] / 1024 / 1024, 2))
    tracemalloc.stop()
    return heap, len(documents)


def table_row(label, score, seconds=None):
    figures = " ".join(
        "     -" if value is None else f"{value:6.2f}" for value in score.figures().values()
    )
    time_taken = f"{seconds:6.2f}s" if seconds is not None else ""
    return (
        f"{label:24} {score.truths:4} {score.predictions:5} {score.matched:5} "
        f"{figures} {time_taken}"
    )


def print_report(rows, total, refusals, timings, *, verbose):
    headers = " ".join(
        f"{name:>6}" for name in ("recall", "prec", "parent", "owner", "supp", "notes")
    )
    print(f"{'document':24} {'asks':>4} {'found':>5} {'match':>5} {headers} {'time':>7}")
    for name, _shape, score in rows:
        print(table_row(name, score, timings[name]))
        if name in refusals:
            print(f"    refused: {refusals[name][:160]}")
        if verbose:
            for text in score.missed:
                print(f"    missed: {text[:160]}")
            for text in score.extra:
                print(f"    extra:  {text[:90]}")
            for text in score.wrong:
                print(f"    wrong:  {text[:90]}")
    print(table_row("ALL", total))
    print("goals: " + ", ".join(f"{k} >= {v}" for k, v in GOALS.items()))
    if "long-report-pdf" in timings:
        refused = " (refused)" if "long-report-pdf" in refusals else ""
        print(f"40-page PDF import: {timings['long-report-pdf']:.2f} s{refused} (goal < 5 s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="score one document, by its truth file's name")
    parser.add_argument("--verbose", action="store_true", help="list missed and extra asks")
    args = parser.parse_args()
    setup_django()
    rows, total, refusals, timings = run(args.only)
    print_report(rows, total, refusals, timings, verbose=args.verbose)
    heap, per_round = ([], 0) if args.only else memory_by_round()
    if heap:
        growth = (heap[-1] - heap[1]) * 1024 / (per_round * (len(heap) - 2))
        print(
            f"memory after each round of {per_round} imports: "
            + ", ".join(f"{mb:.1f} MB" for mb in heap)
            + f" (after the first round: {growth:+.1f} KB per import)"
        )
    figures = total.figures()
    figures.update(
        documents=len(rows),
        refused=len(refusals),
        asks=total.truths,
        found=total.predictions,
        matched=total.matched,
        pdf_seconds=round(timings.get("long-report-pdf", 0.0), 2),
        memory_mb_by_round=heap,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        per_document={name: score.figures() for name, _shape, score in rows},
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
