"""The documentation as a user meets it: the README opens with two commands that work on a
fresh clone and stays a guide; docs/ holds the rest and keeps up with the code (every result
column, every cell setting, every memory category); and no shipped file speaks of how the
project was developed (issue numbers, commit hashes in prose, notes about the machine or
session the work was done on, tools users do not have). Pure file reads: well under a
second."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path, PurePath

import pytest
from conftest import REPO

from ffbench.measure.categories import CATEGORIES
from ffbench.results import COLUMNS
from ffbench.settings.cell import SETTINGS

README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_LINES = 250
MAX_VERDICT_LINES = 15
# the README's first block: install and run the embedded default sweep; then the tests
INSTALL_AND_SWEEP = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/ffbench sweep")
TEST_COMMAND = ".venv/bin/python -m pytest"

SHIPPED = ("README.md", "docs", "ffbench", "tests", "benchmarks", "examples")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".txt", ".cfg", ".ini", ".yaml", ".yml"}
NOT_SHIPPED = {".venv", "__pycache__", "build", "dist", ".pytest_cache", ".mypy_cache",
               ".ruff_cache", ".hypothesis", ".benchmarks"}
# Development history, which a user cannot act on: each pattern written so that it does not
# match itself.
FORBIDDEN = {
    "an issue number": re.compile(r"\bissues?\s*#?\d+|\bthe\s+issue'?s\b|\bPR\s*#\d+",
                                  re.IGNORECASE),
    "a note about the machine the work was done on": re.compile(r"\bthis\s+machine\b",
                                                                re.IGNORECASE),
    "a note about a working session": re.compile(r"\bthis\s+session\b", re.IGNORECASE),
    "a tool users do not have": re.compile(r"\bfarm[-_](?:bench|studio)\b", re.IGNORECASE),
}
# A commit hash in prose: 7 to 40 hex digits mixing digits and letters, or any such run
# after "commit". In Python only comments and docstrings are prose: string literals are data
# (tests pin cell ids, 12 hex digits).
HEX_WORD = re.compile(r"(?<![\w.-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w-])")
AFTER_COMMIT = re.compile(r"\bcommits?\s+`?([0-9a-f]{7,40})\b", re.IGNORECASE)
# a dated note: an ISO date in prose (tests hold dates as row data, so they are not scanned)
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
DATED_PLACES = ("README.md", "docs", "ffbench", "benchmarks", "examples")
# in the documentation, a measurement names its hardware ("a 2-core x86 CPU", "an NVIDIA H200")
# rather than pointing at the one it was made on (the code speaks of the host it runs on)
THIS_HARDWARE = re.compile(r"\bthis\s+(?:\d+-core\s+)?(?:CPU|GPU|laptop|computer)\b",
                           re.IGNORECASE)
DOC_PLACES = ("README.md", "docs")
DESIGN_DOC = "DESIGN" ".md"  # cited only if the repository has one


def shipped_files() -> list[Path]:
    files = []
    for name in SHIPPED:
        root = REPO / name
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            parts = set(path.relative_to(REPO).parts)
            if (path.is_file() and path.suffix in TEXT_SUFFIXES and not parts & NOT_SHIPPED
                    and not any(part.endswith(".egg-info") for part in parts)):
                files.append(path)
    return files


def python_prose(text: str) -> dict[int, str] | None:
    """A Python file's prose by line number: its comments and docstrings (None: not Python
    that parses, so every line counts as prose)."""
    try:
        tree = ast.parse(text)
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (SyntaxError, tokenize.TokenError):
        return None
    prose = {token.start[0]: token.string for token in tokens if token.type == tokenize.COMMENT}
    lines = text.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                for number in range(first.lineno, (first.end_lineno or first.lineno) + 1):
                    prose[number] = lines[number - 1]
    return prose


def findings(text: str, where: PurePath) -> list[str]:
    """What in a file's text speaks of how the project was developed, one line each."""
    found = []
    prose = python_prose(text) if where.suffix == ".py" else None
    for number, line in enumerate(text.splitlines(), start=1):
        for what, pattern in FORBIDDEN.items():
            match = pattern.search(line)
            if match:
                found.append(f"{where}:{number}: {what}: {match.group(0)!r}")
        words = line if prose is None else prose.get(number, "")
        if words:
            hashes = {m.group(0) for m in HEX_WORD.finditer(words)}
            hashes |= {m.group(1) for m in AFTER_COMMIT.finditer(words)}
            for candidate in sorted(hashes):
                found.append(f"{where}:{number}: a commit hash: {candidate!r}")
        date = DATE.search(line)
        if date and where.parts[0] in DATED_PLACES:
            found.append(f"{where}:{number}: a date: {date.group(0)!r}")
        hardware = THIS_HARDWARE.search(line)
        if hardware and where.parts[0] in DOC_PLACES:
            found.append(f"{where}:{number}: unnamed hardware: {hardware.group(0)!r}")
        if DESIGN_DOC in line and not (REPO / DESIGN_DOC).is_file():
            found.append(f"{where}:{number}: a {DESIGN_DOC} the repository does not have")
    return found


def test_no_shipped_file_speaks_of_how_it_was_developed() -> None:
    files = shipped_files()
    assert len(files) > 50 and README in files  # the walk found the project
    found = [line for path in files
             for line in findings(path.read_text(errors="replace"), path.relative_to(REPO))]
    assert not found, "\n".join(found)


# each example is split in the source, so that this file does not match itself
@pytest.mark.parametrize(("line", "what"), [
    ("as issue " "13 asked", "an issue number"),
    ("(issues " "7 and 16)", "an issue number"),
    ("the issue" "'s targets", "an issue number"),
    ("measured on this " "machine", "a note about the machine"),
    ("in this " "session", "a note about a working session"),
    ("timed with farm-" "bench", "a tool users do not have"),
    ("against e329" "664 (3.1x)", "a commit hash"),
    ("commit `347" "0700`", "a commit hash"),
    ("on 2026-" "12-02", "a date"),
    ("1.8 s on this " "2-core CPU", "unnamed hardware"),
    ("(see DESIGN" ".md)", "the repository does not have"),
])
def test_the_scan_catches_each_kind(line: str, what: str) -> None:
    """Each pattern finds what it is for (in docs/, where dates count too)."""
    found = findings(f"A line of prose {line}.", PurePath("docs", "probe.md"))
    assert any(what in one for one in found), found


def test_the_scan_leaves_numbers_and_ids_alone() -> None:
    text = ("2,460 MiB at 47 layers, 0.91x; the sha256 of the settings; lr 1e-3; 48.02 MB; "
            "the git_sha column; h200; 12 hex digits; colour #1f77b4.")
    assert findings(text, PurePath("docs", "probe.md")) == []


def test_in_python_only_comments_and_docstrings_are_prose() -> None:
    hashed = "3cc8" "23ae6e99"
    code = (f'"""A module."""\nIDS = {{"ff": "{hashed}"}}  # cell ids\n\n\n'
            f'def f() -> None:\n    """Measured at {hashed}."""\n# since {hashed}\n')
    found = findings(code, PurePath("tests", "probe.py"))
    assert [line.split(":")[1] for line in found] == ["6", "7"], found


def readme_lines() -> list[str]:
    return README.read_text().splitlines()


def test_the_readme_opens_with_the_two_commands() -> None:
    lines = readme_lines()
    start = lines.index("```bash")
    assert start <= 3, "the commands come first"
    end = lines.index("```", start + 1)
    assert lines[start + 1 : end] == [INSTALL_AND_SWEEP, TEST_COMMAND]
    # on a fresh clone nothing is activated: every command names the venv's own program
    for part in INSTALL_AND_SWEEP.split("&&"):
        assert part.split()[0] in ("python3", ".venv/bin/pip", ".venv/bin/ffbench"), part
    # CI runs the README's test command
    assert TEST_COMMAND in (REPO / ".ci" / "run").read_text().splitlines()


def test_the_readme_is_a_guide() -> None:
    lines = readme_lines()
    assert len(lines) <= MAX_README_LINES
    start = next(i for i, line in enumerate(lines) if line.startswith("<!-- verdict"))
    end = lines.index("<!-- /verdict -->")
    assert end - start + 1 <= MAX_VERDICT_LINES
    assert end < lines.index("## First steps") < lines.index("## Read more")


def test_the_readmes_accuracy_is_the_accuracy_sweeps_output() -> None:
    """The accuracy the README states is the verdict's of the committed accuracy sweep."""
    from ffbench.analysis.verdict import verdict
    from ffbench.analysis.verdict_text import accuracy_lines
    from ffbench.results import load

    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("<!-- accuracy"))
    end = lines.index("<!-- /accuracy -->")
    found = verdict(load([REPO / "results" / "accuracy-cpu"]))
    assert lines[start + 1 : end] == accuracy_lines(found)


def test_the_readmes_verdict_is_the_fair_sweeps_output() -> None:
    """The answer the README opens with is the verdict of the committed fair sweep
    (`ffbench sweep fair --device meta --out results/fair-meta`), word for word."""
    from ffbench.analysis.verdict import verdict
    from ffbench.analysis.verdict_text import answer_lines
    from ffbench.results import load

    lines = readme_lines()
    start = next(i for i, line in enumerate(lines) if line.startswith("<!-- verdict"))
    end = lines.index("<!-- /verdict -->")
    assert "results/fair-meta" in lines[start]
    assert lines[start + 1 : end] == answer_lines(verdict(load([REPO / "results" / "fair-meta"])))


def test_every_doc_the_readme_links_exists_and_every_doc_is_linked() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", README.read_text()))
    assert linked, "the README links docs/"
    missing = [name for name in sorted(linked) if not (REPO / name).is_file()]
    assert not missing
    present = {f"docs/{path.name}" for path in DOCS.glob("*.md")}
    assert present <= linked, f"not linked from the README: {sorted(present - linked)}"


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings ("## 3. Memory categories" ->
    3-memory-categories)."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_docs_resolve() -> None:
    broken = []
    for path in [README, *sorted(DOCS.glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^)#:]+\.md)(?:#([^)]*))?\)", path.read_text()):
            linked = path.parent / target
            if not linked.is_file() or (anchor and anchor not in anchors(linked)):
                broken.append(f"{path.relative_to(REPO)} -> {target}#{anchor}")
    assert not broken


def documented_names(path: Path) -> set[str]:
    """The `name`s in the first cell of every table row."""
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", path.read_text(), re.MULTILINE))


def test_every_result_column_is_documented() -> None:
    documented = documented_names(DOCS / "columns.md")
    assert not set(COLUMNS) - documented, f"not in docs/columns.md: {set(COLUMNS) - documented}"
    assert not documented - set(COLUMNS), f"not result columns: {documented - set(COLUMNS)}"


def test_the_plugin_guide_has_every_setting_and_category() -> None:
    guide = DOCS / "plugins.md"
    documented = documented_names(guide)
    assert {"algorithm", *SETTINGS} <= documented, set(SETTINGS) - documented
    assert set(CATEGORIES) <= documented, set(CATEGORIES) - documented
