"""The planner's exact action sequences by plan length, and its misses by class, from `gestalt eval`.

    gestalt eval --config=configs/small.py --workdir=W
    python benchmarks/plan_breakdown.py --workdir=W [--bench=held_out --goals=datasets/goals/held_out.jsonl]

Reads the bench's goals and W/eval/failures_<bench>.jsonl (which `gestalt eval` writes), so the
table is of the eval that ran, with no model loaded. A miss is counted once, in the first class
it fits: a one-step goal whose intent the policy got wrong; a composite the policy called one
step; a composite with a step left out, with a step too many, with the right tools in another
order, or with a tool wrong.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

from absl import app, flags

from gestalt_jax.data import examples

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir `gestalt eval` has scored.", required=True)
_BENCH = flags.DEFINE_string("bench", "held_out", "The bench's name in workdir/eval.")
_GOALS = flags.DEFINE_string("goals", "datasets/goals/held_out.jsonl", "The bench's goals file.")

CLASSES = ("one step, the policy's intent wrong", "one step, another tool or more steps",
           "composite called one step by the policy", "composite, a step left out", "composite, a step too many",
           "composite, right tools in another order", "composite, a tool wrong")


def miss_class(expected: list[str], planned: list[str] | None, intent: str, gold_intent: str) -> str:
    planned = planned or []
    if len(expected) == 1:
        return CLASSES[0] if intent != gold_intent else CLASSES[1]
    if intent != "COMPOSITE":
        return CLASSES[2]
    if len(planned) != len(expected):
        return CLASSES[3] if len(planned) < len(expected) else CLASSES[4]
    return CLASSES[5] if sorted(planned) == sorted(expected) else CLASSES[6]


def breakdown(records: list[dict], failures: list[dict]) -> tuple[dict, collections.Counter]:
    """({plan length: (right, goals)}, Counter of miss classes) for the planner's action sequences."""
    wrong = {f["goal"]: f for f in failures if "planner_actions_acc" in f["wrong"]}
    lengths, classes = collections.defaultdict(lambda: [0, 0]), collections.Counter()
    for r in records:
        n = len(r["actions"])
        lengths[n][1] += 1
        f = wrong.get(r["goal"])
        if f is None:
            lengths[n][0] += 1
            continue
        planned = None if f["planner"] is None else [s["tool"] for s in f["planner"]]
        classes[miss_class(r["actions"], planned, f["policy"]["intent"], r["intent"])] += 1
    return dict(sorted(lengths.items())), classes


def main(argv):
    del argv
    records = examples.load_goals(_GOALS.value)
    path = Path(_WORKDIR.value) / "eval" / f"failures_{_BENCH.value}.jsonl"
    failures = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    lengths, classes = breakdown(records, failures)
    right, total = sum(v[0] for v in lengths.values()), sum(v[1] for v in lengths.values())
    composite = [v for n, v in lengths.items() if n > 1]
    c_right, c_total = sum(v[0] for v in composite), sum(v[1] for v in composite)
    print(f"{_BENCH.value}: planner action sequences {right}/{total} = {100 * right / total:.1f}%; "
          f"composites {c_right}/{c_total} = {100 * c_right / max(c_total, 1):.1f}%")
    print("| steps | right | goals | % |\n|---|---:|---:|---:|")
    for n, (ok, count) in lengths.items():
        print(f"| {n} | {ok} | {count} | {100 * ok / count:.1f} |")
    print("\n| miss | goals |\n|---|---:|")
    for name in CLASSES:
        print(f"| {name} | {classes[name]} |")


if __name__ == "__main__":
    app.run(main)
