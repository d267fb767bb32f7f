"""Settle the Meihekou leukaemia example N times through the whole desk path (parse, batch of one, settle,
explain), for counting instructions with callgrind, which unlike time does not depend on how fast the
machine happens to be:

    valgrind --tool=callgrind .venv/bin/python -m bench.desk_instructions 0
    valgrind --tool=callgrind .venv/bin/python -m bench.desk_instructions 300

(the difference of the two totals, divided by 300, is the instructions of one desk settlement)."""

from __future__ import annotations

import sys
from pathlib import Path

from policies.compile import compile_policy
from policies.library import load_library
from settlement.claims import ClaimBatch, decode_json, parse_claim
from settlement.explain import explain
from settlement.waterfall import settle


def main() -> None:
    library, _ = load_library()
    plan = compile_policy(library.get("jl-meihekou@2014"), library)
    example = Path(__file__).resolve().parents[1] / "examples" / "meihekou-leukaemia.json"
    data = decode_json(example.read_text(encoding="utf-8"))
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 300):
        explain(settle(plan, ClaimBatch.from_claims([parse_claim(data)])), 0)


if __name__ == "__main__":
    main()
