"""The shared seed documents: real reports and op-eds that sit beside the repository in
../shared/seeds (or wherever TRACKER_SEEDS_DIR points), and the import command that reads them.

Where they are absent, the tests that read them skip, unless TRACKER_REQUIRE_SEEDS=1 (as .ci/run
sets when it finds them) makes that a failure: a moved folder must not silently skip them."""

import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def seeds_dir_from(environ):
    """$TRACKER_SEEDS_DIR, else ../shared/seeds beside the repository (as a clone next to the
    shared folder has them)."""
    return Path(environ.get("TRACKER_SEEDS_DIR") or ROOT.parent / "shared" / "seeds")


SEEDS_DIR = seeds_dir_from(os.environ)
WRC_BRIEF = "wrc-2024-migration-does-not-start-at-the-us-border.md"
HILL_OP_ED = "thehill-2021-five-immediate-migration-steps.txt"


def seeds_required():
    return os.environ.get("TRACKER_REQUIRE_SEEDS") == "1"


def missing_seeds(path):
    """Skip the test for want of `path`, or fail it when the seeds are required."""
    message = f"seed documents not found at {path}"
    if seeds_required():
        pytest.fail(f"{message} (TRACKER_REQUIRE_SEEDS=1)", pytrace=False)
    pytest.skip(message)


def seed_path(name, *, seeds_dir=None):
    path = (seeds_dir or SEEDS_DIR) / name
    if not path.is_file():
        missing_seeds(path)
    return path


def read_seed(name):
    return seed_path(name).read_text(encoding="utf-8")


def run_command(*args):
    """Run `import_document` with `args`; return what it printed."""
    stdout = io.StringIO()
    call_command("import_document", *map(str, args), stdout=stdout)
    return stdout.getvalue()
