"""`raykd <command> [options]`: the console entry point (as `ray` and `optuna` have), the same as
`python -m raykd.<command> [options]` and `./run <command> [options]`.

    raykd search --task rte --space search_spaces/internal.py --data-dir ../shared/data/glue
    raykd teacher|distill|search|export|report|bench --help
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "teacher": "fine-tune a teacher, or search its recipe (--space)",
    "distill": "distil one configuration into a student",
    "search": "search distillation configurations and student shapes; export the best student",
    "export": "export a search's best student again, in serving formats",
    "report": "the tables of run records: teachers, single runs, fp32 against bf16 (the paper table: python -m experiments.paper)",
    "bench": "benchmarks: speed, memory, latency of shapes, the peer",
}


def usage() -> str:
    """The command list `raykd` prints without a command, one line per command."""
    width = max(map(len, COMMANDS))
    return "\n".join(["usage: raykd <command> [options]   (raykd <command> --help lists every option)", "",
                      *(f"  {name:<{width}}  {what}" for name, what in COMMANDS.items())])


def main(argv: list[str] | None = None):
    """Run `raykd.<command>.main` on the remaining arguments; returns what it returns. An unknown or missing
    command prints the list and exits 2 (`error: ...; ...` as every bad input)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; use one of {', '.join(COMMANDS)} (raykd --help)", file=sys.stderr)
        raise SystemExit(2)
    return importlib.import_module(f"raykd.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    main()
