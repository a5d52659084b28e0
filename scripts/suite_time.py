"""Two test-suite runs side by side, from pytest's `--durations=0` output (issue 11: "the suite is no slower").

    python scripts/suite_time.py OLD.log NEW.log [--labels before after]

Prints a Markdown report: each run's total (pytest's own "in N s" line), the time per test file (setup,
call and teardown summed), and the tests whose names appear in both runs. Each log is one run of
`pytest tests -q --durations=0`; pytest's durations list is the only timing source (no timing of our own).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^([0-9.]+)s (setup|call|teardown)\s+(\S+)")
TOTAL = re.compile(r"(\d+) passed.* in ([0-9.]+)s")


def parse(path: Path) -> tuple[dict[str, float], int, float]:
    """({test id: seconds of setup + call + teardown}, tests passed, the run's total seconds)."""
    tests: dict[str, float] = defaultdict(float)
    passed, total = 0, float("nan")
    for line in Path(path).read_text().splitlines():
        if m := LINE.match(line):
            tests[m.group(3)] += float(m.group(1))
        elif m := TOTAL.search(line):
            passed, total = int(m.group(1)), float(m.group(2))
    return dict(tests), passed, total


def by_file(tests: dict[str, float]) -> dict[str, float]:
    files: dict[str, float] = defaultdict(float)
    for test, seconds in tests.items():
        files[test.split("::")[0]] += seconds
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--labels", nargs=2, default=["before", "after"])
    args = p.parse_args(argv)
    (old, old_n, old_total), (new, new_n, new_total) = parse(args.old), parse(args.new)
    a, b = args.labels
    print(f"| run | tests passed | total (s) |\n|---|---|---|\n| {a} | {old_n} | {old_total:.0f} |\n"
          f"| {b} | {new_n} | {new_total:.0f} |\n\n{b} / {a}: {new_total / old_total:.2f}\n")
    of, nf = by_file(old), by_file(new)
    print(f"| test file | {a} (s) | {b} (s) |\n|---|---|---|")
    for f in sorted(set(of) | set(nf), key=lambda f: -max(of.get(f, 0), nf.get(f, 0))):
        print(f"| {f} | {of.get(f, 0):.0f} | {nf.get(f, 0):.0f} |" if f in of and f in nf else
              f"| {f} | {'-' if f not in of else f'{of[f]:.0f}'} | {'-' if f not in nf else f'{nf[f]:.0f}'} |")
    both = sorted(set(old) & set(new))
    so, sn = sum(old[t] for t in both), sum(new[t] for t in both)
    print(f"\nTests with the same name in both runs: {len(both)}, {so:.0f} s {a} and {sn:.0f} s {b} "
          f"({sn / so:.2f}x).")


if __name__ == "__main__":
    main()
