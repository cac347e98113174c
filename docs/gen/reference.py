"""The reference pages, generated from the code at build time.

- the API: one page per module, found by walking the package's folder (nothing imported, no list
  of module names kept here), rendered by mkdocstrings from the docstrings;
- the configuration and the operational limits: from ``Settings.model_fields``;
- the command line: from the click command behind the console script that pyproject.toml declares;
- the message schemas: the JSON Schema documents of ``schemas/``, copied beside their index.
"""

from __future__ import annotations

import html
import importlib
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
import typer
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

API_DIR = "reference/api"
# A setting is an operational limit when its name says it bounds something: a maximum or minimum,
# a timeout, a limit, a retention, what may be pending, a size, a cache. Settings added later with
# such names appear on the limits page by themselves; json_schema_extra={"limit": True} adds any other.
LIMIT_NAME = re.compile(r"(^|_)(max|min|pending|size|cache)(_|$)|timeout|limit|retention")


@dataclass(frozen=True)
class ApiPage:
    """A module's reference page: its dotted name, the page's path and its place in the nav."""

    identifier: str
    path: str
    nav: tuple[str, ...]


def api_pages(root: Path, package: str) -> list[ApiPage]:
    """Every public module of ``package`` (a folder under ``root``), packages first in each folder."""
    pages = []
    for source in sorted((root / package).rglob("*.py")):
        parts = source.relative_to(root).with_suffix("").parts
        if parts[-1] == "__main__" or any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        folders = [root.joinpath(*parts[:depth]) for depth in range(1, len(parts))]
        if not all((folder / "__init__.py").is_file() for folder in folders):
            continue  # a folder of data files, not a package
        if parts[-1] == "__init__":
            parts = parts[:-1]
            path = Path(API_DIR, *parts, "index.md")
        else:
            path = Path(API_DIR, *parts).with_suffix(".md")
        pages.append(ApiPage(".".join(parts), path.as_posix(), parts))
    return pages


def api_page(page: ApiPage) -> str:
    """The page's Markdown: mkdocstrings renders the module from its docstrings."""
    return f"::: {page.identifier}\n"


def env_name(settings: type[BaseSettings], name: str, info: FieldInfo) -> str:
    """The environment variable a setting is read from (its first alias, else the prefixed name)."""
    alias = info.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    if isinstance(alias, str):
        return alias
    return f"{settings.model_config.get('env_prefix', '')}{name}".upper()


def type_text(annotation: Any) -> str:
    """A setting's type as a reader sees it: the allowed words of a Literal, else the type's name."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal:
        return ", ".join(f"`{a}`" for a in args)
    if args and get_origin(annotation) is not None:
        return " or ".join(type_text(a) for a in args)
    return getattr(annotation, "__name__", str(annotation))


def bounds_text(info: FieldInfo) -> str:
    """The range a setting is validated against, e.g. ``>= 1, <= 4096``; empty when unbounded."""
    words = []
    for item in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None and isinstance(item, annotated_types.BaseMetadata):
                words.append(f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            words.append(f"matches `{pattern}`")
    return ", ".join(words)


def default_text(info: FieldInfo) -> str:
    """The default as the configuration table of ``stream.settings`` shows it."""
    if info.default_factory is not None:
        name = getattr(info.default_factory, "__name__", "")
        return "(the host name)" if name == "gethostname" else f"(computed by {name or 'a function'})"
    return "(unset)" if info.default is None else str(info.default)


@dataclass(frozen=True)
class Setting:
    """One row of the configuration reference."""

    variable: str
    name: str
    default: str
    type: str
    bounds: str
    meaning: str
    limit: bool


def settings_of(settings: type[BaseSettings], shown: set[str] | None = None) -> list[Setting]:
    """Every field of ``settings`` (only the variables in ``shown``, when given), in source order."""
    rows = []
    for name, info in settings.model_fields.items():
        variable = env_name(settings, name, info)
        if shown is not None and variable not in shown:
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        limit = bool(LIMIT_NAME.search(name)) or bool(extra.get("limit"))
        rows.append(
            Setting(
                variable,
                name,
                default_text(info),
                type_text(info.annotation),
                bounds_text(info),
                info.description or "",
                limit,
            )
        )
    return rows


def cell(text: str) -> str:
    """Text made safe for a Markdown table cell: no HTML outside code spans, no column breaks."""
    parts = re.split(r"(`[^`]*`)", text.replace("\n", " "))
    safe = [p if p.startswith("`") else html.escape(p, quote=False) for p in parts]
    return "".join(safe).replace("|", "\\|")


def settings_table(rows: list[Setting]) -> str:
    """The Markdown table of ``rows``."""
    lines = ["| variable | default | type | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| `{r.variable}` | `{r.default}` | {r.type} | {cell(r.bounds) or '-'} | {cell(r.meaning)} |"
        )
    return "\n".join(lines)


def configuration_page(rows: list[Setting]) -> str:
    """The configuration reference: every setting, its default, type, range and meaning."""
    head = (
        "# Configuration\n\n"
        "All settings come from the environment: the broker address and how to connect to it from\n"
        "`KAFKA_<NAME>` (the names of Kafka's own client settings), the MLflow server from\n"
        "`MLFLOW_TRACKING_URI`, everything else from `STREAMSCORE_<NAME>`. A value outside its range\n"
        "stops start-up with one line naming the setting. `streamscore worker --help` lists them too.\n\n"
        "This page is generated from `stream.settings.Settings` when the site is built.\n\n"
    )
    return head + settings_table(rows) + "\n"


def limits_page(rows: list[Setting]) -> str:
    """The operational limits: the settings that bound sizes, counts and waits, with their defaults."""
    limits = [r for r in rows if r.limit]
    head = (
        "# Operational limits\n\n"
        "Every bound streamscore puts on what it reads, holds and waits for, as settings with their\n"
        "defaults. What happens at a bound is in the setting's meaning: input beyond a size bound\n"
        "becomes a dead letter whose reason names the bound (see\n"
        "[Topics and contracts](../guides/contracts.md#dead-letters)), a wait beyond its bound ends or\n"
        "restarts what waited. The [security page](security.md) says why input is bounded.\n\n"
        "This page is generated from `stream.settings.Settings` when the site is built: a setting whose\n"
        "name holds `max`, `min`, `timeout`, `limit`, `retention`, `pending`, `size` or `cache` is\n"
        "listed here. The bounds that are not settings (JSON nesting, id lengths) are on the security\n"
        "page.\n\n"
    )
    return head + settings_table(limits) + "\n"


def console_command(pyproject: Path, script: str) -> Any:
    """The click command behind ``script`` in ``[project.scripts]`` of ``pyproject``.

    Typer carries a click of its own, so commands are read by what they offer (``get_params``,
    ``list_commands``, ``context_class``), not by their class.
    """
    target = tomllib.loads(pyproject.read_text())["project"]["scripts"][script]
    module, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module), attr)
    return typer.main.get_command(app) if isinstance(app, typer.Typer) else app


def _help_markdown(text: str) -> list[str]:
    """A command's help: paragraphs as text, click's ``\\b`` paragraphs (kept as written) as blocks."""
    lines: list[str] = []
    for paragraph in re.split(r"\n\s*\n", (text or "").strip()):
        if paragraph.lstrip().startswith("\b"):
            body = "\n".join(line.strip() for line in paragraph.splitlines() if line.strip() != "\b")
            lines += ["```text", body.strip(), "```", ""]
        elif paragraph.strip():
            lines += [cell(" ".join(paragraph.split())).replace("\\|", "|"), ""]
    return lines


def _walk(command: Any, words: list[str], parent: Any) -> Iterator[str]:
    ctx = command.context_class(command, info_name=words[-1], parent=parent)
    yield f"{'#' * min(len(words) + 1, 6)} `{' '.join(words)}`\n"
    yield from (line + "\n" for line in _help_markdown(command.help or command.short_help or ""))
    usage = " ".join([*words, *command.collect_usage_pieces(ctx)])
    yield f"```text\n{usage}\n```\n\n"
    records = [r for p in command.get_params(ctx) if (r := p.get_help_record(ctx)) is not None]
    if records:
        yield "| option or argument | meaning |\n| --- | --- |\n"
        for opts, meaning in records:
            options = opts.replace("|", "\\|")
            yield f"| `{options}` | {cell(meaning) or '-'} |\n"
        yield "\n"
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, [*words, name], ctx)


def cli_page(command: Any, script: str) -> str:
    """The command-line reference: every command and subcommand with its usage and options."""
    head = (
        "# Command line\n\n"
        f"Every command of `{script}`, generated from the command line's own definitions when the\n"
        "site is built (`--help` on any command prints the same). The settings every command reads\n"
        "from the environment are on the [configuration page](configuration.md).\n\n"
    )
    return head + "".join(_walk(command, [script], None))


def schema_pages(schemas: Path) -> dict[str, str]:
    """The index page of the JSON Schema documents and each document, by path under the site."""
    files = {f"reference/schemas/{p.name}": p.read_text() for p in sorted(schemas.glob("*.json"))}
    lines = [
        "# Message schemas\n",
        "The JSON Schema documents of the message contracts and the model card, generated from the",
        "pydantic contracts in `stream.contracts` (`streamscore schemas` writes them to `schemas/`;",
        "a test fails when they are stale). [Topics and contracts](../guides/contracts.md) says which",
        "topic carries which.\n",
        "| document | contract | what |",
        "| --- | --- | --- |",
    ]
    for path, text in files.items():
        doc = json.loads(text)
        what = (doc.get("description") or "").split("\n\n")[0].replace("``", "`")
        name = path.rsplit("/", 1)[1]
        lines.append(f"| [{name}](schemas/{name}) | {doc.get('title', '')} | {cell(what)} |")
    files["reference/schemas.md"] = "\n".join(lines) + "\n"
    return files
