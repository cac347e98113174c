"""The documentation site: it builds strictly, its generated pages follow the code, the README stays
short and points to it, and what cites the documentation cites pages that exist."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from pydantic import Field

from docs.gen import reference, results
from stream.settings import Settings, settings_rows

ROOT = Path(__file__).parents[2]
README_MAX_LINES = 150
QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}


def readme_problems(text: str, root: Path) -> list[str]:
    """What is wrong with a README: too long, a missing command, no link to the docs, a dead link."""
    problems = []
    if len(text.splitlines()) > README_MAX_LINES:
        problems.append(f"{len(text.splitlines())} lines, more than {README_MAX_LINES}")
    problems += [
        f"does not show {w!r}"
        for w in ("make run", "make test", "make docs", "mkdocs serve")
        if w not in text
    ]
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    if not any(link.startswith("docs/") and link.endswith(".md") for link in links):
        problems.append("links to no page under docs/")
    problems += [f"dead link {link}" for link in links if "://" not in link and not (root / link).exists()]
    return problems


def test_readme_is_short_and_points_to_the_docs():
    assert readme_problems((ROOT / "README.md").read_text(), ROOT) == []


def test_the_readme_check_refuses_a_manual():
    """The manual the README used to be: too long, no docs link."""
    manual = "# streamscore\n\nmake run\nmake test\n" + "A paragraph of the manual.\n" * 1800
    assert readme_problems(manual, ROOT) == [
        "1804 lines, more than 150",
        "does not show 'make docs'",
        "does not show 'mkdocs serve'",
        "links to no page under docs/",
    ]
    assert readme_problems("[x](docs/no-such-page.md)", ROOT)[-1] == "dead link docs/no-such-page.md"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``mkdocs build --strict`` (every link and anchor checked)."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install -e '.[docs]' (make docs does)")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, **QUIET},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def _text(html: Path) -> str:
    return re.sub(r"<[^>]+>", " ", html.read_text())


def test_the_site_builds_strictly_with_every_generated_page(site):
    config = _text(site / "reference/configuration/index.html")
    assert all(variable in config for variable, _, _ in settings_rows())
    cli = _text(site / "reference/cli/index.html")
    assert all(f"streamscore {' '.join(path)}" in cli for path in command_paths())
    page = _text(site / "results/index.html")
    assert all(p.stem in page for p in (ROOT / "bench/results").glob("*.json"))
    for module in reference.api_pages(ROOT, "stream"):
        folder = (
            module.path.removesuffix("index.md") if module.path.endswith("/index.md") else module.path[:-3]
        )
        assert module.identifier in _text(site / folder / "index.html"), module.identifier


def command_paths(command: object | None = None, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of ``streamscore``, as words after the script's name."""
    command = command or reference.console_command(ROOT / "pyproject.toml", "streamscore")
    ctx = command.context_class(command)  # type: ignore[attr-defined]
    paths = []
    for name in getattr(command, "list_commands", lambda _: [])(ctx):
        sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
        paths += [(*words, name), *command_paths(sub, (*words, name))]
    return paths


def test_api_pages_come_from_walking_the_package(tmp_path):
    pkg = tmp_path / "pkg"
    for path in (
        "__init__.py",
        "a.py",
        "_private.py",
        "__main__.py",
        "sub/__init__.py",
        "sub/b.py",
        "data/notes.py",
        "data/x.xml",
    ):
        (pkg / path).parent.mkdir(parents=True, exist_ok=True)
        (pkg / path).write_text('"""doc"""\n')
    pages = {p.identifier: p.path for p in reference.api_pages(tmp_path, "pkg")}
    assert pages == {
        "pkg": "reference/api/pkg/index.md",
        "pkg.a": "reference/api/pkg/a.md",
        "pkg.sub": "reference/api/pkg/sub/index.md",
        "pkg.sub.b": "reference/api/pkg/sub/b.md",
    }
    (pkg / "sub/c.py").write_text('"""new"""\n')
    assert "pkg.sub.c" in {p.identifier for p in reference.api_pages(tmp_path, "pkg")}
    assert reference.api_page(reference.api_pages(tmp_path, "pkg")[1]) == "::: pkg.a\n"


def test_every_module_of_stream_has_a_page():
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "stream").rglob("*.py")
        if not p.name.startswith("_") or p.name == "__init__.py"
    }
    assert {p.identifier for p in reference.api_pages(ROOT, "stream")} == modules


class WithNewSettings(Settings):
    """Settings as another change might extend them."""

    widget_timeout_s: float = Field(5.0, gt=0, le=60, description="Longest a widget waits.")
    max_widgets: int = Field(10, ge=1, description="Most widgets held.")
    widget_colour: str = Field("blue", description="Colour of the widgets.")
    widget_budget: int = Field(
        3, ge=0, json_schema_extra={"limit": True}, description="Widgets a batch may spend."
    )


def test_new_settings_appear_in_the_configuration_and_the_limits():
    rows = reference.settings_of(WithNewSettings)
    config = reference.configuration_page(rows)
    for variable in ("STREAMSCORE_WIDGET_TIMEOUT_S", "STREAMSCORE_MAX_WIDGETS", "STREAMSCORE_WIDGET_COLOUR"):
        assert f"`{variable}`" in config
    assert (
        "| `STREAMSCORE_WIDGET_TIMEOUT_S` | `5.0` | float | &gt; 0, &lt;= 60 | Longest a widget waits. |"
        in config
    )
    limits = reference.limits_page(rows)
    assert "STREAMSCORE_WIDGET_TIMEOUT_S" in limits and "STREAMSCORE_MAX_WIDGETS" in limits
    assert "STREAMSCORE_WIDGET_BUDGET" in limits and "STREAMSCORE_WIDGET_COLOUR" not in limits
    assert "STREAMSCORE_APP_ID" not in limits and "STREAMSCORE_MAX_MESSAGE_BYTES" in limits


def test_the_configuration_shows_every_setting_read_and_its_env_name():
    shown = {variable for variable, _, _ in settings_rows()}
    rows = reference.settings_of(Settings, shown)
    assert {r.variable for r in rows} == shown
    by_name = {r.name: r for r in rows}
    assert by_name["kafka_bootstrap_servers"].variable == "KAFKA_BOOTSTRAP_SERVERS"
    assert by_name["mlflow_tracking_uri"].variable == "MLFLOW_TRACKING_URI"
    assert by_name["instance_id"].default == "(the host name)"
    assert by_name["processing_guarantee"].type == "`at_least_once`, `exactly_once`"
    assert by_name["batch_size"].bounds == ">= 1, <= 4096"


def test_the_command_line_page_has_every_command_and_escapes_its_help():
    app = typer.Typer()
    group = typer.Typer(help="A group.")
    app.add_typer(group, name="grp")

    @app.command()
    def top(n: int = typer.Option(1, help="Child <i> | the rest.")) -> None:
        """Top command.

        \b
        A=1: kept as written
        B=2: on its own line
        """

    @group.command("leaf")
    def leaf() -> None:
        """A leaf."""

    page = reference.cli_page(typer.main.get_command(app), "tool")
    assert "### `tool top`" in page and "### `tool grp`" in page and "#### `tool grp leaf`" in page
    assert "Child &lt;i&gt; \\| the rest." in page
    assert "```text\nA=1: kept as written\nB=2: on its own line\n```" in page


def test_the_schemas_page_lists_every_schema_document():
    pages = reference.schema_pages(ROOT / "schemas")
    for path in (ROOT / "schemas").glob("*.json"):
        assert pages[f"reference/schemas/{path.name}"] == path.read_text()
        assert f"(schemas/{path.name})" in pages["reference/schemas.md"]


def _doc(folder: Path, name: str, doc: dict) -> None:
    (folder / name).write_text(json.dumps(doc))


def test_the_results_page_has_a_table_per_kind(tmp_path):
    rung = {
        "rung": "5 streamscore, 1 process",
        "key": "streamscore",
        "events_per_s": 12345,
        "cpu_s_per_1000": 0.0456,
        "machine_cores_busy": 1.5,
        "peak_rss_mib": 300.5,
        "latency": [{"fraction_of_max": 0.5, "p50_ms": 61.2, "p99_ms": 250.4}],
    }
    ladder = {"plan": {"fractions": [0.5]}, "rungs": [rung], "valid": True, "ratios": {"avro_vs_json": 0.91}}
    machine = {"cpus": 4, "cpu": "Test CPU"}
    micro = {"feature_row": {"p50_us": 1.23, "p99_us": 2}}
    formats = {"avro": {"pipeline_per_event_us": 21.5, "vs_json": 0.77}}
    run = {"date": "2031-01-02T03:04:05+00:00", "machine": machine, "ladder": ladder, "micro": micro}
    _doc(tmp_path, "2031-01-02.json", {**run, "formats": formats})
    kill = {"scenario": "SIGKILL x4, restart", "guarantee": "exactly_once", "events": 4321, "lost": 0}
    kill |= {"duplicated": 0, "recovery_s": 9.87, "live_s": 12.04, "seconds": 55.5}
    _doc(tmp_path, "faults-2031-01-03-0910.json", {"date": "2031-01-03", "chaos": True, "results": [kill]})
    shift = {"detector": {"detected": "2/2", "median": 640.0, "max": 700}}
    drift = {
        "date": "2031-01-04",
        "seeds": [1, 2],
        "monitor_us_per_event": 4.56,
        "feature_shift_delay": shift,
    }
    _doc(tmp_path, "drift-2031-01-04.json", drift)
    outcomes = {"date": "2031-01-05T00:00:00+00:00", "join": {"joins_per_s": 7654}, "scorer": {}}
    _doc(tmp_path, "outcomes-2031-01-05.json", outcomes)
    _doc(tmp_path, "notes.json", {"what": "something else"})
    page = results.page(tmp_path, {"2031-01-02": "results/2031-01-02.png"})
    assert "### 2031-01-02 03:04 UTC: `2031-01-02.json`" in page
    assert "| 5 streamscore, 1 process | 12,345 | 0.046 | 1.5 | 300.5 | 61 / 250 |" in page
    assert (
        "| `avro_vs_json` | 0.91 |" in page
        and "![chart of the run 2031-01-02](results/2031-01-02.png)" in page
    )
    assert "| `feature_row` | 1.23 |" in page and "| avro | 21.5 | - | - | 0.77 |" in page
    assert "### 2031-01-03 09:10 UTC: `faults-2031-01-03-0910.json`" in page
    assert "| SIGKILL x4, restart | exactly_once | 4,321 | 0 | 0 | 9.9 | 12.0 | 55.5 |" in page
    assert "640 median, 700 at most (2/2)" in page and "| monitor µs per event | 4.56 |" in page
    assert "| outcome worker joins/s | 7,654 |" in page
    assert "- `notes.json`" in page


def test_the_results_page_shows_every_document_kept():
    page = results.page(ROOT / "bench/results", {})
    for path in (ROOT / "bench/results").glob("*.json"):
        assert f"`{path.name}`" in page or f"`{path.stem}`" in page, path.name
    assert "## Other documents" not in page, "a results document of a shape the page does not know"


DOC_CITATION = re.compile(r"docs/([\w./-]+\.md)")


def test_what_cites_the_docs_cites_pages_that_exist():
    """Error messages, tests and deployment files point to documentation pages, not README sections."""
    cited, readme = set(), []
    for folder in ("stream", "tests", "deploy", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".yaml", ".yml", ".tpl") or path.name == "test_docs.py":
                continue
            text = path.read_text(errors="replace")
            cited |= {(m, path.name) for m in DOC_CITATION.findall(text)}
            readme += [path.name for line in text.splitlines() if re.search(r"README\b(?!\.md)", line)]
    assert readme == [], "cite a docs page instead of the README"
    assert cited, "nothing cites the docs"
    assert [c for c in cited if not (ROOT / "docs" / c[0]).is_file()] == []
