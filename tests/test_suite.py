"""How the test suite is put together: shared helpers live in tests/support, so no module of
the suite imports from a test module or from conftest.py (pytest loads conftest itself), and
the seed documents are looked for in one place."""

import ast
import re
from pathlib import Path

import pytest

from tests.support import seeds

TESTS = Path(__file__).resolve().parent
TEST_MODULE = re.compile(r"^tests\.(test_\w+|conftest)")


def imported_modules(source, *, package="tests"):
    """Every module name `source` imports, anywhere in its code (inside functions too);
    `from a import b` gives both `a` and `a.b`, as `b` may be a module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def package_of(path):
    parts = path.relative_to(TESTS.parent).with_suffix("").parts
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


@pytest.mark.parametrize(
    "source",
    [
        "from tests.test_tasks import wait_until",
        "def f():\n    from tests.test_tasks import wait_until",
        "import tests.test_roles",
        "from tests import test_admin",
        "from .test_importing import read_seed",
        "from tests.conftest import local_url",
    ],
)
def test_an_import_from_a_test_module_or_conftest_is_seen(source):
    assert any(TEST_MODULE.match(name) for name in imported_modules(source))


def test_no_module_of_the_suite_imports_from_a_test_module_or_conftest():
    offenders = sorted(
        f"{path.relative_to(TESTS.parent)} imports {name}"
        for path in TESTS.rglob("*.py")
        for name in set(imported_modules(path.read_text(), package=package_of(path)))
        if TEST_MODULE.match(name)
    )
    assert offenders == [], "move shared helpers to tests/support:\n" + "\n".join(offenders)


def test_the_seeds_are_read_from_tracker_seeds_dir_else_beside_the_repository(tmp_path):
    assert seeds.seeds_dir_from({"TRACKER_SEEDS_DIR": str(tmp_path)}) == tmp_path
    beside = seeds.ROOT.parent / "shared" / "seeds"
    assert seeds.seeds_dir_from({}) == seeds.seeds_dir_from({"TRACKER_SEEDS_DIR": ""}) == beside


def test_missing_seeds_skip_their_tests_unless_required(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKER_REQUIRE_SEEDS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="seed documents not found"):
        seeds.seed_path("brief.md", seeds_dir=tmp_path)

    monkeypatch.setenv("TRACKER_REQUIRE_SEEDS", "1")
    with pytest.raises(pytest.fail.Exception, match="TRACKER_REQUIRE_SEEDS=1"):
        seeds.seed_path("brief.md", seeds_dir=tmp_path)

    (tmp_path / "brief.md").write_text("# A brief\n")
    assert seeds.seed_path("brief.md", seeds_dir=tmp_path) == tmp_path / "brief.md"
