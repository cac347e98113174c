"""Every shell block of docs/getting-started.md runs, as a reader would run it (``pages.py`` says how
each block is checked). The blocks run from the repository's root in the project's virtual
environment (as the page says), with neither a broker address nor a secret given: the page has to
provide both.
"""

from __future__ import annotations

import pytest
from pages import ROOT, UNTIL, blocks, environment, run_page

PAGE = ROOT / "docs/getting-started.md"


def test_the_page_has_blocks_of_every_kind():
    checks = [b.check for b in blocks(PAGE.read_text())]
    assert "run" in checks and "make -n" in checks
    assert {UNTIL.fullmatch(c)["then"] for c in checks if UNTIL.fullmatch(c)} == {"stop", "keep"}
    assert all(c in ("run", "make -n") or UNTIL.fullmatch(c) for c in checks), checks


def test_every_command_of_the_getting_started_page_runs(tmp_path):
    run_page(PAGE.read_text(), environment(tmp_path), tmp_path)


@pytest.mark.parametrize(
    ("page", "checks"),
    [
        ("<!-- check: make -n -->\n```bash\nmake test\n```\n\n```bash\nls\n```\n", ["make -n", "run"]),
        (
            '```text\nnot a command\n```\n<!-- check: run until "x" and keep -->\n```bash\na\n```\n',
            ['run until "x" and keep'],
        ),
    ],
)
def test_blocks_are_read_with_their_checks(page, checks):
    assert [b.check for b in blocks(page)] == checks
