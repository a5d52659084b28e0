"""The layout the architecture page promises (docs/architecture.md), checked on the source: the commands are
thin, no module grows into a wall, the library's layers import downwards, and no command imports another."""

import ast
from pathlib import Path

import pytest

from raykd.__main__ import COMMANDS

PACKAGE = Path(__file__).resolve().parent.parent / "raykd"
MODULES = sorted(PACKAGE.rglob("*.py"))


def imports(path: Path) -> set[str]:
    """The raykd modules `path` imports, by dotted name (`from raykd.tuning import tuner` -> raykd.tuning.tuner)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.split(".")[0] == "raykd"}


def test_the_commands_only_parse_call_and_print():
    for command in COMMANDS:
        lines = len((PACKAGE / f"{command}.py").read_text().splitlines())
        assert lines <= 150, f"raykd/{command}.py has {lines} lines; move what it computes into the library"


def test_no_module_is_a_wall():
    walls = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 400}
    assert not walls, f"modules over 400 lines: {walls}"


# student/ is left out on purpose: it times candidate shapes with artifacts.deploy's timer, so that a shape's
# latency and the exported student's are measured alike.
@pytest.mark.parametrize("layer", ["tuning", "training", "method", "teacher_outputs"])
def test_the_library_layers_never_import_what_a_run_hands_back_or_a_command(layer):
    commands = {f"raykd.{c}" for c in COMMANDS}
    for path in sorted((PACKAGE / layer).glob("*.py")):
        wrong = {m for m in imports(path) if m.startswith("raykd.artifacts") or m in commands}
        assert not wrong, f"raykd/{layer}/{path.name} imports {sorted(wrong)}"


def test_no_command_imports_another():
    commands = {f"raykd.{c}" for c in COMMANDS}
    for command in COMMANDS:
        others = imports(PACKAGE / f"{command}.py") & (commands - {f"raykd.{command}"})
        assert not others, f"raykd/{command}.py imports the command(s) {sorted(others)}"
