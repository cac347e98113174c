"""Generate the site's reference pages, results page and changelog page (run by mkdocs-gen-files).

Nothing here names a module, a setting or a command: the API pages come from walking the package's
folder, the configuration and limits from ``Settings.model_fields``, the command line from the
click command behind the ``streamscore`` console script, the results from ``bench/results/*.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import reference  # noqa: E402  (beside this script, importable once its folder is on the path)
import results  # noqa: E402

PACKAGE = "stream"
SCRIPT = "streamscore"


def write(path: str, text: str, source: Path | None = None) -> None:
    """Write a generated page; ``source`` is what its edit link points at."""
    with mkdocs_gen_files.open(path, "w") as out:
        out.write(text)
    if source is not None:
        mkdocs_gen_files.set_edit_path(path, source.relative_to(ROOT).as_posix())


def api() -> None:
    """One page per module, and the literate nav of the API section."""
    nav = mkdocs_gen_files.Nav()
    for page in reference.api_pages(ROOT, PACKAGE):
        nav[page.nav] = page.path.removeprefix(reference.API_DIR + "/")
        write(page.path, reference.api_page(page))
    write(f"{reference.API_DIR}/SUMMARY.md", "".join(nav.build_literate_nav()))


def settings() -> None:
    """The configuration reference and the operational limits, from the settings class."""
    from stream.settings import Settings, settings_rows

    shown = {variable for variable, _, _ in settings_rows()}  # the settings still read
    rows = reference.settings_of(Settings, shown)
    write("reference/configuration.md", reference.configuration_page(rows))
    write("operations/limits.md", reference.limits_page(rows))


def cli() -> None:
    write(
        "reference/cli.md",
        reference.cli_page(reference.console_command(ROOT / "pyproject.toml", SCRIPT), SCRIPT),
    )


def schemas() -> None:
    for path, text in reference.schema_pages(ROOT / "schemas").items():
        write(path, text)


def bench_results() -> None:
    """The results page, with each run's chart copied beside it."""
    folder = ROOT / "bench" / "results"
    charts = {}
    for png in sorted(folder.glob("*.png")):
        charts[png.stem] = f"results/{png.name}"
        with mkdocs_gen_files.open(charts[png.stem], "wb") as out:
            out.write(png.read_bytes())
    write("results.md", results.page(folder, charts))


def changelog() -> None:
    source = ROOT / "CHANGELOG.md"
    write("changelog.md", source.read_text(), source)


api()
settings()
cli()
schemas()
bench_results()
changelog()
