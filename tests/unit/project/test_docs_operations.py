"""docs/operations.md and docs/configuration.md stay true to the code: every FACEGATE_* variable the
code reads is in the configuration reference with central's defaults, every alert has a runbook row,
every relative link resolves, quoted benchmark figures and commands are in the files they cite, and
the partition upkeep described is the one the code runs. Plain file reads: no services, no models.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import yaml

from central.db.partitions import ensure_event_partitions
from central.settings import CentralSettings
from tests.support.paths import REPO

ROOT = REPO
DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
CONFIGURATION = DOCS / "configuration.md"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Written by others; these pages link to them and the test fails until they exist.
SIBLING_DOCS = ("deployment.md", "images.md", "fleet-rollout.md")

_VARIABLE = re.compile(r"FACEGATE_[A-Z0-9_]+(?![A-Za-z0-9_{])")  # not a prefix or an f-string stem
_ROW_VARIABLE = re.compile(r"^\| `(FACEGATE_[A-Z0-9_]+)` \| ([^|]*) \|")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_NUMBER = re.compile(r"\d{1,3}(?: \d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code_variables(*folders: str) -> set[str]:
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            found.update(m for m in _VARIABLE.findall(_read(path)) if not m.endswith("_"))
    return found


def _documented_defaults() -> dict[str, str]:
    """{variable: default cell} of the rows naming one variable in docs/configuration.md's tables whose
    second column is "default" (other tables mention variables without being the reference)."""
    found: dict[str, str] = {}
    header: list[str] = []
    for line in _read(CONFIGURATION).splitlines():
        if not line.startswith("|"):
            header = []
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not header:
            header = cells
            continue
        row = _ROW_VARIABLE.match(line)
        if row and len(header) > 1 and header[1] == "default":
            assert row.group(1) not in found, f"{row.group(1)} has two rows in docs/configuration.md"
            found[row.group(1)] = row.group(2).strip()
    return found


def _section(text: str, heading: str) -> str:
    """The lines under the heading that starts with `heading`, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}.*?$(.*?)(?=^#+ |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no heading '{heading}'"
    return match.group(1)


def _table_rows(section: str) -> list[list[str]]:
    """Cells of the section's table rows, header and separator left out."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|")
    ]
    return [row for row in rows[1:] if not set("".join(row)) <= set("-: ")]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", _read(path), re.MULTILINE)}


def _code_default(field: dataclasses.Field[Any]) -> str | None:
    """The field's default as the reference writes it, or None when it is computed or absent."""
    value = field.default
    if value is dataclasses.MISSING or value is None or value in {"", ()}:
        return None
    if isinstance(value, tuple):  # a comma-separated list
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def test_configuration_every_variable_read_by_code_documented() -> None:
    documented = set(_documented_defaults())
    missing = sorted(_code_variables("central", "common", "edge") - documented)
    assert not missing, f"read by the code but not in a table of docs/configuration.md: {missing}"


def test_configuration_every_settings_variable_in_a_reference_page() -> None:
    names = {m for m in _VARIABLE.findall(_read(ROOT / "central" / "settings.py")) if not m.endswith("_")}
    pages = _read(CONFIGURATION) + _read(DOCS / "central-api.md")
    missing = sorted(name for name in names if f"`{name}`" not in pages)
    assert not missing, f"central/settings.py reads variables no reference page names: {missing}"


def test_configuration_documented_variables_all_read_somewhere() -> None:
    read = _code_variables("central", "common", "edge", "demo", "devtools/services")
    stale = sorted(set(_documented_defaults()) - read)
    assert not stale, f"docs/configuration.md documents variables nothing reads: {stale}"


def test_configuration_test_service_variables_documented() -> None:
    documented = _read(DOCS / "testing-services.md") + _read(CONFIGURATION)
    missing = sorted(name for name in _code_variables("devtools/services") if f"`{name}`" not in documented)
    assert not missing, f"test-service variables missing from the docs: {missing}"


def test_configuration_defaults_match_central_settings() -> None:
    documented = _documented_defaults()
    fields = {field.name: field for field in dataclasses.fields(CentralSettings)}
    wrong = []
    for name, cell in documented.items():
        field = fields.get(name.removeprefix("FACEGATE_").lower())
        expected = None if field is None else _code_default(field)
        if expected is None:
            continue
        written = cell.split()[0].strip("`") if cell else ""
        if written != expected:
            wrong.append(f"{name}: docs say {cell!r}, central/settings.py has {expected!r}")
    assert not wrong, "\n".join(wrong)
    assert len(documented) >= 60  # the tables were parsed at all


def test_operations_runbook_covers_every_alert() -> None:
    rules: Any = yaml.safe_load(_read(ALERTS))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    rows = _table_rows(_section(_read(OPERATIONS), "Runbook: alerts"))
    named = {row[0].strip("`") for row in rows}
    assert alerts - named == set(), f"alerts without a runbook row: {sorted(alerts - named)}"
    assert named - alerts == set(), f"runbook rows for alerts that do not exist: {sorted(named - alerts)}"
    assert all(len(row) == 4 and row[3] for row in rows), "every runbook row says what to do"


def test_operations_and_configuration_relative_links_resolve() -> None:
    broken = []
    for page in (OPERATIONS, CONFIGURATION):
        for target in _LINK.findall(_read(page)):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            path = page if not file_part else (page.parent / file_part).resolve()
            if path.name in SIBLING_DOCS and path.parent == DOCS:
                continue  # test_operations_sibling_docs_exist
            if not path.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_operations_sibling_docs_exist() -> None:
    text = _read(OPERATIONS) + _read(CONFIGURATION)
    unlinked = [name for name in SIBLING_DOCS if f"]({name}" not in text]
    assert not unlinked, f"operations/configuration pages should link {unlinked}"
    absent = [f"docs/{name}" for name in SIBLING_DOCS if not (DOCS / name).exists()]
    assert not absent, f"linked from docs/operations.md and docs/configuration.md but missing: {absent}"


def test_operations_measured_figures_quoted_from_their_source() -> None:
    rows = _table_rows(_section(_read(OPERATIONS), "Measured figures"))
    assert len(rows) >= 10
    wrong = []
    for what, figure, command, source in rows:
        text = _read(ROOT / source)
        numbers = set(_NUMBER.findall(text))
        wrong += [f"{what}: {n} not in {source}" for n in _NUMBER.findall(figure) if n not in numbers]
        if command != "—" and command.strip("`") not in text:
            wrong.append(f"{what}: command {command} not in {source}")
    assert not wrong, "\n".join(wrong)


def test_operations_partition_upkeep_as_coded() -> None:
    upkeep = _read(ROOT / "central" / "db" / "partitions.py")
    period = re.search(r"^PARTITION_EVERY_S = (\d+) \* 3600", upkeep, re.MULTILINE)
    assert period, "PARTITION_EVERY_S changed form: update docs/operations.md and this test"
    ahead, behind = (
        inspect.signature(ensure_event_partitions).parameters[n].default
        for n in ("months_ahead", "months_behind")
    )
    text = _read(OPERATIONS)
    every = f"every {period.group(1)} hours"
    window = f"months_ahead={ahead}, months_behind={behind}"
    assert every in text, f"docs/operations.md should say partitions are kept {every}"
    assert window in text, f"docs/operations.md should name the code's window: {window}"
