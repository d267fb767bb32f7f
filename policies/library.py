"""Loading policies and disease lists, and checking them together; every problem is reported at once.

A policy library is a folder of policy files (`*.yaml`) and a `diseases/` folder of list files. Loading
never stops at the first problem: it returns the library of what passed and a list of `Problem`s, each
with file, path inside it and reason. A policy with any problem is left out, so it can never be used.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.schema import DiseaseListFile, Policy, Tier
from settlement.codes import STAGE_RANK
from settlement.errors import field_errors
from settlement.plan import Plan

LIBRARY_DIR = Path(__file__).parent / "library"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.reason}" if self.path else f"{self.file}: {self.reason}"


class PolicyError(ValueError):
    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in problems))


class _TextNumberLoader(yaml.SafeLoader):
    """YAML with decimals kept as their text (0.655 stays "0.655", never a binary float) and duplicate
    keys reported instead of silently overwritten."""


def _float_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


def _plain_int_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int | str:
    """YAML 1.1 reads 0600 as octal 384, 0x258 and 10:00 as 600; only plain decimal digits are a number
    here, and everything else stays text for the schema to accept or refuse."""
    text = str(loader.construct_scalar(node))
    return int(text) if _PLAIN_INT.fullmatch(text) else text


_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_TextNumberLoader.add_constructor("tag:yaml.org,2002:float", _float_as_text)
_TextNumberLoader.add_constructor("tag:yaml.org,2002:int", _plain_int_or_text)
_TextNumberLoader.add_constructor("tag:yaml.org,2002:int", _plain_int_or_text)
_TextNumberLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def read_yaml(text: str, name: str = "<text>") -> Any:
    loader = _TextNumberLoader(text)
    loader.name = name  # marks in error messages name the file
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@dataclass
class Library:
    """Valid policies by `id@version` and disease lists by id."""

    policies: dict[str, Policy] = field(default_factory=dict)
    disease_lists: dict[str, DiseaseListFile] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # policy key or list id -> file
    # Compiled plans by policy key (policies/compile.py `plan_for`); a library is never changed once loaded.
    plans: dict[str, Plan] = field(default_factory=dict, compare=False, repr=False)

    def versions(self, policy_id: str) -> list[Policy]:
        found = [p for p in self.policies.values() if p.id == policy_id]
        return sorted(found, key=lambda p: p.valid_from)

    def get(self, ref: str, on: dt.date | None = None) -> Policy:
        """`id@version`, or `id` alone: the version in force on `on`, or the latest version."""
        if "@" in ref:
            if ref not in self.policies:
                raise KeyError(f"no valid policy {ref!r} in the library")
            return self.policies[ref]
        versions = self.versions(ref)
        if not versions:
            raise KeyError(f"no valid policy {ref!r} in the library")
        if on is None:
            return versions[-1]
        for policy in versions:
            if policy.valid_from <= on and (policy.valid_until is None or on <= policy.valid_until):
                return policy
        raise KeyError(f"no version of policy {ref!r} is in force on {on}")

    def composed_tiers(self, policy: Policy) -> list[tuple[Policy, Tier]]:
        """The policy's own tiers and those of the policies it includes, in payment order."""
        out: list[tuple[Policy, Tier]] = []
        for include in policy.includes:
            out.extend(self.composed_tiers(self.policies[include]))
        out.extend((policy, tier) for tier in policy.tiers)
        return sorted(out, key=lambda pt: STAGE_RANK[pt[1].stage])  # stable: includes first within a stage


def _load_file(path: Path, model: type[Policy] | type[DiseaseListFile]) -> tuple[Any, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, [Problem(str(path), "", f"cannot read: {err}")]
    return _load_text(str(path), text, model)


def _load_text(name: str, text: str, model: type[Policy] | type[DiseaseListFile]) -> tuple[Any, list[Problem]]:
    try:
        data = read_yaml(text, name)
    except yaml.YAMLError as err:
        return None, [Problem(name, "", f"not valid YAML: {err}")]
    if not isinstance(data, dict):
        return None, [Problem(name, "", "expected a mapping at the top of the file")]
    try:
        return model.model_validate(data), []
    except ValidationError as err:
        whole = "(whole file)"
        return None, [
            Problem(name, "" if e.field == whole else e.field, e.message) for e in field_errors(err, whole=whole)
        ]


def _files(paths: Iterable[Path]) -> Iterator[tuple[Path, bool]]:
    """(file, is_disease_list) for every YAML file named or found under a named folder."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.glob("*.yaml")):
                yield file, False
            for file in sorted((path / "diseases").glob("*.yaml")):
                yield file, True
        else:
            yield path, path.parent.name == "diseases" or _looks_like_list(path)


def _looks_like_list(path: Path) -> bool:
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except Exception:
        return False
    return isinstance(data, dict) and "entries" in data and "tiers" not in data


def load_library(
    paths: Iterable[Path | str] = (LIBRARY_DIR,),
    base: Library | None = None,
    documents: Iterable[tuple[str, str]] = (),
) -> tuple[Library, list[Problem]]:
    """Load policy and disease-list files (and folders of them), and policy `documents` given as
    (name, YAML text), on top of `base`; check everything."""
    library = Library(
        policies=dict(base.policies) if base else {},
        disease_lists=dict(base.disease_lists) if base else {},
        sources=dict(base.sources) if base else {},
    )
    problems: list[Problem] = []
    new_keys: set[str] = set()
    new_lists: set[str] = set()
    policy_documents: list[tuple[Policy | None, list[Problem], str]] = []
    for file, is_list in _files(Path(p) for p in paths):
        if is_list:
            disease_list, found = _load_file(file, DiseaseListFile)
            problems.extend(found)
            if disease_list is not None:
                if disease_list.id in new_lists:
                    problems.append(Problem(str(file), "id", f"disease list {disease_list.id!r} is defined twice"))
                new_lists.add(disease_list.id)
                library.disease_lists[disease_list.id] = disease_list
                library.sources[disease_list.id] = str(file)
        else:
            policy_documents.append((*_load_file(file, Policy), str(file)))
    policy_documents.extend((*_load_text(name, text, Policy), name) for name, text in documents)
    for policy, found, name in policy_documents:
        problems.extend(found)
        if policy is not None:
            # A file loaded over a base library (`doudi policy validate FILE`) replaces the base's copy of
            # the same id@version; twice among the new files is a mistake.
            if policy.key in new_keys:
                problems.append(Problem(name, "version", f"policy {policy.key} is defined twice"))
                continue
            new_keys.add(policy.key)
            library.policies[policy.key] = policy
            library.sources[policy.key] = name

    rejected: set[str] = set()
    for policy in library.policies.values():
        found = check_policy(policy, library)
        if found:
            rejected.add(policy.key)
            problems.extend(found)
    overlapping = _overlaps(library)
    problems.extend(problem for problem, _ in overlapping)
    rejected.update(key for _, key in overlapping)
    # A policy that includes a rejected policy cannot be used either.
    changed = True
    while changed:
        changed = False
        for policy in library.policies.values():
            if policy.key not in rejected and any(inc in rejected for inc in policy.includes):
                rejected.add(policy.key)
                problems.append(Problem(library.sources[policy.key], "includes", "includes a policy that has problems"))
                changed = True
    for key in rejected:
        del library.policies[key]
    return library, problems


def check_policy(policy: Policy, library: Library) -> list[Problem]:
    """Checks that need more than one field: references, accumulators, lists, includes, order."""
    file = library.sources.get(policy.key, policy.key)
    problems: list[Problem] = []

    def need_ref(path: str, ref: str | None) -> None:
        if ref is not None and ref not in policy.references:
            problems.append(Problem(file, path, f"reference {ref!r} is not in this file's `references`"))

    last_rank = -1
    for i, tier in enumerate(policy.tiers):
        where = f"tiers[{i}]"
        rank = STAGE_RANK[tier.stage]
        if rank < last_rank:
            problems.append(
                Problem(
                    file,
                    f"{where}.stage",
                    f"{tier.stage} cannot follow a later stage; insurance pays "
                    "first, then medical assistance, then temporary aid, then grants",
                )
            )
        last_rank = max(last_rank, rank)
        need_ref(f"{where}.eligibility.ref", tier.eligibility.ref)
        for j, tilt in enumerate(tier.tilts):
            need_ref(f"{where}.tilts[{j}].ref", tilt.ref)
        blocks: list[tuple[str, Any]] = [(where, tier)]
        blocks += [(f"{where}.buckets[{j}]", b) for j, b in enumerate(tier.buckets or [])]
        for path, block in blocks:
            for name in ("threshold", "deductible", "ratio"):
                param = getattr(block, name)
                if param is not None:
                    need_ref(f"{path}.{name}.ref", param.ref)
            if block.caps is not None:
                for name in ("per_claim", "annual"):
                    cap = getattr(block.caps, name)
                    if cap is not None:
                        need_ref(f"{path}.caps.{name}.ref", cap.ref)
            if block.accumulator is not None and not _declared(block.accumulator, policy, library):
                problems.append(
                    Problem(file, f"{path}.accumulator", f"accumulator {block.accumulator!r} is not declared")
                )
            list_id = getattr(block, "disease_list", None)
            if list_id is not None and list_id not in library.disease_lists:
                problems.append(Problem(file, f"{path}.disease_list", f"disease list {list_id!r} does not exist"))
    for j, include in enumerate(policy.includes):
        included = library.policies.get(include)
        if included is None:
            problems.append(Problem(file, f"includes[{j}]", f"policy {include!r} does not exist"))
            continue
        if included.policy_year_start != policy.policy_year_start:
            problems.append(Problem(file, f"includes[{j}]", "included policy starts its year on another day"))
        starts_late = included.valid_from > policy.valid_from
        ends_early = included.valid_until is not None and (
            policy.valid_until is None or included.valid_until < policy.valid_until
        )
        if starts_late or ends_early:
            problems.append(
                Problem(file, f"includes[{j}]", f"{include} is not in force for all of this policy's dates")
            )
    if not problems:
        problems.extend(_composition_problems(policy, library, file))
    return problems


def _declared(key: str, policy: Policy, library: Library) -> bool:
    if key in policy.accumulators:
        return True
    return any(_declared(key, library.policies[i], library) for i in policy.includes if i in library.policies)


def _composition_problems(policy: Policy, library: Library, file: str) -> list[Problem]:
    problems: list[Problem] = []
    try:
        tiers = library.composed_tiers(policy)
    except (KeyError, RecursionError):
        return [Problem(file, "includes", "includes form a loop or name a missing policy")]
    seen: set[str] = set()
    for _, tier in tiers:
        if tier.id in seen:
            problems.append(Problem(file, "tiers", f"tier id {tier.id!r} appears twice once includes are added"))
        seen.add(tier.id)
    problems.extend(_shared_accumulators(tiers, file))
    return problems


def _shared_accumulators(tiers: Sequence[tuple[Policy, Tier]], file: str) -> list[Problem]:
    """Buckets of one tier may share an accumulator (one cap for both); two funds may not, since each
    fund's year-to-date figures are its own."""
    owner: dict[str, str] = {}
    problems: list[Problem] = []
    for _, tier in tiers:
        for params in [] if tier.stage == "grants" else tier.parameter_sets():
            key = params.accumulator
            if key is None:
                continue
            if owner.setdefault(key, tier.id) != tier.id and not any(
                key in p.reason and tier.id in p.reason for p in problems
            ):
                problems.append(
                    Problem(
                        file,
                        "accumulators",
                        f"accumulator {key!r} is used by tiers {owner[key]!r} and {tier.id!r}; give each fund its own",
                    )
                )
    return problems


def _overlaps(library: Library) -> list[tuple[Problem, str]]:
    """Two versions in force on the same day for one region and tier would make a settlement ambiguous;
    the later-starting one is refused (with the policy it overlaps named)."""
    problems: list[tuple[Problem, str]] = []
    by_slot: dict[tuple[str, str], list[Policy]] = {}
    for policy in library.policies.values():
        for tier in policy.tiers:
            by_slot.setdefault((policy.region, tier.id), []).append(policy)
    far = dt.date.max
    for (region, tier_id), policies in sorted(by_slot.items()):
        ordered = sorted(policies, key=lambda p: p.valid_from)
        for earlier, later in itertools.pairwise(ordered):
            if later.valid_from <= (earlier.valid_until or far):
                problem = Problem(
                    library.sources.get(later.key, later.key),
                    "valid_from",
                    f"region {region}, tier {tier_id!r}: in force from {later.valid_from}, while "
                    f"{earlier.key} is in force until {earlier.valid_until or 'further notice'}",
                )
                problems.append((problem, later.key))
    return problems
