"""Reforms: what policy staff change, validated in full before anything runs.

A reform is applied to a library and gives a new library. It is one of, in any order and stacked:
- a second policy (a file, or a published id@version) that replaces or joins the library's policies;
- overrides `POLICY:PATH=VALUE`, e.g.
  `jl-meihekou@2014:tiers.medical_assistance.buckets.general.caps.annual.default=none`
  (list items are addressed by their `id`, or by position; VALUE is YAML: `none`, `"0.70"`, `[a, b]`);
- a parameter sheet (XLSX: one override per row, columns `policy`, `path`, `value`).

Each step edits the policy's document as data and loads it again with every check the library runs on a
policy file, so an invalid reform is refused with every problem named (file, path, reason), and the
engine only ever sees a policy that passed them.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from policies.library import Library, Problem, load_library, read_yaml

_OVERRIDE = re.compile(r"^(?P<policy>[^:=\s]+@[^:=\s]+):(?P<path>[^=]+)=(?P<value>.*)$", re.S)


class ReformError(ValueError):
    """The reform is refused: every problem, each naming where it is."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Override:
    policy: str  # id@version
    path: tuple[str, ...]
    value: Any
    source: str  # where it was given: "--set 2" or "sheet.xlsx row 4"

    @property
    def text(self) -> str:
        return f"{self.policy}:{'.'.join(self.path)}"


def parse_override(text: str, source: str) -> Override:
    match = _OVERRIDE.match(text.strip())
    if match is None:
        raise ReformError(
            [Problem(source, text, "write POLICY@VERSION:PATH=VALUE, e.g. jl-meihekou@2014:tiers.x=none")]
        )
    path = tuple(part for part in match["path"].strip().split(".") if part)
    if not path:
        raise ReformError([Problem(source, text, "the path is empty")])
    try:
        value = read_yaml(match["value"].strip() or "''", source)
    except yaml.YAMLError as err:
        raise ReformError([Problem(source, text, f"the value is not valid YAML: {err}")]) from None
    return Override(match["policy"], path, value, source)


def sheet_overrides(data: bytes, name: str) -> list[Override]:
    """Overrides from a parameter sheet: the first worksheet, a header row with `policy`, `path`, `value`
    (in any order; other columns are ignored), one override per row below it."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many kinds for a file that is not a workbook
        raise ReformError([Problem(name, "", f"not an XLSX workbook: {err}")]) from None
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    header = [str(c).strip().lower() if c is not None else "" for c in (rows[0] if rows else ())]
    missing = [c for c in ("policy", "path", "value") if c not in header]
    if missing:
        raise ReformError([Problem(name, "row 1", f"missing column(s): {', '.join(missing)}")])
    at = {c: header.index(c) for c in ("policy", "path", "value")}
    found: list[Override] = []
    problems: list[Problem] = []
    for number, row in enumerate(rows[1:], start=2):
        cells = {c: row[i] if i < len(row) else None for c, i in at.items()}
        if all(v in (None, "") for v in cells.values()):
            continue
        value = cells["value"]
        # A spreadsheet stores every number as a binary double; its shortest repr is the decimal the person
        # typed (0.7, not 0.69999…), which is then parsed as exact decimal text like any --set value.
        text = "none" if value is None else (str(value) if not isinstance(value, float) else repr(value))
        try:
            found.append(parse_override(f"{cells['policy']}:{cells['path']}={text}", f"{name} row {number}"))
        except ReformError as err:
            problems.extend(err.problems)
    if problems:
        raise ReformError(problems)
    return found


def _document(library: Library, key: str) -> dict[str, Any]:
    """The policy's document as data, as it was loaded (from its file, or a published document)."""
    policy = library.policies[key]
    source = library.sources.get(key, "")
    path = Path(source)
    if source and path.suffix in (".yaml", ".yml") and path.exists():
        data = read_yaml(path.read_text(encoding="utf-8"), source)
    else:
        data = policy.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if not isinstance(data, dict):
        raise ReformError([Problem(source or key, "", "the policy's document is not a mapping")])
    return data


def _step(node: Any, part: str, where: str) -> Any:
    if isinstance(node, dict):
        if part not in node:
            raise KeyError(f"{where}: no {part!r} here (there is: {', '.join(map(str, node)) or 'nothing'})")
        return node[part]
    if isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and item.get("id") == part:
                return item
        if part.isdigit() and int(part) < len(node):
            return node[int(part)]
        ids = [str(item.get("id")) for item in node if isinstance(item, dict) and "id" in item]
        raise KeyError(f"{where}: no item {part!r} (there is: {', '.join(ids) or f'{len(node)} items'})")
    raise KeyError(f"{where}: {part!r} is below a value, not a mapping or a list")


def _set(document: dict[str, Any], override: Override) -> str:
    """Apply the override; the place it changed as the library's problems name it (`tiers[0].ratio`)."""
    *parents, last = override.path
    node: Any = document
    where = ""
    for i, part in enumerate(parents):
        child = _step(node, part, ".".join(override.path[: i + 1]))
        where += _segment(node, child, part, where)
        node = child
    if isinstance(node, dict):
        node[last] = override.value  # a new key is allowed: the schema check names an unknown one
        return where + _segment(node, override.value, last, where)
    if isinstance(node, list):
        target = _step(node, last, override.text)
        index = next(i for i, item in enumerate(node) if item is target)
        node[index] = override.value
        return f"{where}[{index}]"
    raise KeyError(f"{override.text}: the parent is a value, not a mapping or a list")


def _segment(node: Any, child: Any, part: str, where: str) -> str:
    if isinstance(node, list):
        return f"[{next(i for i, item in enumerate(node) if item is child)}]"
    return f".{part}" if where else part


def apply_overrides(library: Library, overrides: Iterable[Override]) -> Library:
    """The library with every override applied to its policy, each policy then checked in full."""
    edited: dict[str, dict[str, Any]] = {}
    changed: list[tuple[str, str, Override]] = []  # (document, place as problems name it, override)
    problems: list[Problem] = []
    for override in overrides:
        if override.policy not in library.policies:
            problems.append(Problem(override.source, override.text, f"no policy {override.policy} in the library"))
            continue
        document = edited.setdefault(override.policy, copy.deepcopy(_document(library, override.policy)))
        try:
            changed.append((f"reform:{override.policy}", _set(document, override), override))
        except KeyError as err:
            problems.append(Problem(override.source, override.text, str(err.args[0])))
    if problems:
        raise ReformError(problems)
    try:
        return _reload(library, {f"reform:{key}": document for key, document in edited.items()})
    except ReformError as err:
        raise ReformError([_blame(p, changed) for p in err.problems]) from None


def _blame(problem: Problem, changed: list[tuple[str, str, Override]]) -> Problem:
    """A problem of an edited policy, said to come from the override (or sheet row) that changed that place."""
    for file, where, override in reversed(changed):  # the last change to a place is the one that stands
        inside = problem.path == where or problem.path.startswith((f"{where}.", f"{where}["))
        if problem.file == file and where and (inside or where.startswith((f"{problem.path}.", f"{problem.path}["))):
            return Problem(f"{override.source} ({override.text})", problem.path, problem.reason)
    return problem


def with_policy(library: Library, path: Path) -> Library:
    """The library with a policy file added, replacing the library's copy of the same id@version."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ReformError([Problem(str(path), "", f"cannot read: {err}")]) from None
    return _reload_texts(library, [(str(path), text)])


def _reload(library: Library, documents: dict[str, dict[str, Any]]) -> Library:
    texts = [(name, yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)) for name, doc in documents.items()]
    return _reload_texts(library, texts)


def _reload_texts(library: Library, texts: list[tuple[str, str]]) -> Library:
    reloaded, problems = load_library([], base=library, documents=texts)
    if problems:
        raise ReformError(problems)
    return reloaded


def assignment(values: Sequence[str], option: str) -> dict[str, str]:
    """`POLICY` (every area) or `AREA=POLICY` pairs -> {area or "*": policy}; POLICY may be id@version."""
    found: dict[str, str] = {}
    problems = []
    for value in values:
        area, sep, policy = value.partition("=")
        if not sep:
            area, policy = "*", value
        if not policy.strip() or (sep and not (area.isdigit() and len(area) == 6)):
            problems.append(
                Problem(option, value, "write POLICY, POLICY@VERSION, or AREA=POLICY with a six-digit area")
            )
            continue
        found[area] = policy.strip()
    if problems:
        raise ReformError(problems)
    return found


@dataclass(frozen=True)
class Reform:
    """A reform ready to run: its library (the baseline's with every change applied) and which policy
    settles each area, with a label saying what it is."""

    library: Library
    policies: dict[str, str]
    label: str


def build_reform(
    library: Library,
    baseline: dict[str, str],
    policies: Sequence[str] = (),
    overrides: Sequence[str] = (),
    sheet: tuple[str, bytes] | None = None,
    override_name: Callable[[int], str] = lambda i: f"--set {i}",
) -> Reform:
    """The reform of `baseline` made of, in this order: `policies` (POLICY, POLICY@VERSION, AREA=POLICY, or
    a .yaml file), `overrides` (POLICY@VERSION:PATH=VALUE; problems name the i-th as `override_name(i)`)
    and a parameter sheet (its name and bytes).
    Everything is checked before anything is refused, and every problem is named in one ReformError."""
    problems: list[Problem] = []
    reform_library, mapping = library, dict(baseline)
    for value in policies:
        try:
            if value.endswith((".yaml", ".yml")):
                reform_library = with_policy(reform_library, Path(value))
                key = next(k for k, src in reform_library.sources.items() if src == value)
                mapping = {"*": reform_library.policies[key].id}
            elif "=" in value:
                mapping = {**mapping, **assignment([value], "reform")}
            else:
                mapping = {"*": value.strip()}
        except ReformError as err:
            problems.extend(err.problems)
    steps: list[Override] = []
    for i, text in enumerate(overrides, start=1):
        try:
            steps.append(parse_override(text, override_name(i)))
        except ReformError as err:
            problems.extend(err.problems)
    if sheet is not None:
        try:
            steps += sheet_overrides(sheet[1], sheet[0])
        except ReformError as err:
            problems.extend(err.problems)
    try:
        reform_library = apply_overrides(reform_library, steps)
    except ReformError as err:
        problems.extend(err.problems)
    for area, policy in sorted(mapping.items()):
        known = policy in reform_library.policies if "@" in policy else bool(reform_library.versions(policy))
        if not known:
            where = "every insured area" if area == "*" else f"insured area {area}"
            problems.append(Problem("reform", policy, f"no valid policy {policy!r} in the library for {where}"))
    if problems:
        raise ReformError(problems)
    label = ", ".join(f"{a}={p}" for a, p in sorted(mapping.items()))
    label += "".join(f"; {o}" for o in overrides) + (f"; sheet {sheet[0]}" if sheet else "")
    return Reform(reform_library, mapping, label)
