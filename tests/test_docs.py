"""The README and docs/ as a newcomer reads them: short enough, every link there, every command in a code block
runnable as written (its flags parse with the command's own parser; CI runs the README's main command)."""

import importlib
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "results" / "README.md"]
COMMANDS = ("teacher", "distill", "search", "export", "report", "bench")
# Each command's module, whose parser() its lines must parse with: raykd's, and the experiment drivers beside it.
MODULES = {**{name: f"raykd.{name}" for name in COMMANDS}, "experiments.paper": "experiments.paper.__main__"}


def code_commands(page: Path) -> list[list[str]]:
    """The raykd and experiment-driver command lines of a page's fenced code blocks (continuations joined,
    comments and leading VAR=value assignments dropped), each as [command, arg, ...], command a MODULES key."""
    text, found = page.read_text(), []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if not re.match(r"\s*([A-Z_]+=\S*\s+)*(\./run|raykd|python -m (raykd|experiments))\b", line):
                continue  # a tree, Python, or another tool's command
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]
            if len(words) >= 2 and words[0] in ("./run", "raykd") and words[1] in COMMANDS:
                found.append(words[1:])
            elif len(words) >= 3 and words[:2] == ["python", "-m"] and words[2].removeprefix("raykd.") in MODULES:
                found.append([words[2].removeprefix("raykd."), *words[3:]])
    return found


def test_the_readme_is_short_and_its_tables_are_readable():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    cells = [c for line in lines if line.startswith("|") for c in line.strip("|").split(" | ")]
    assert cells and max(len(c) for c in cells) <= 200


@pytest.mark.parametrize("page", PAGES[1:], ids=lambda p: p.name)
def test_every_docs_page_starts_with_what_it_is_for(page):
    lines = page.read_text().splitlines()
    assert lines[0].startswith("# ") and lines[2].startswith("What this page is for: ")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", page.read_text()) if not t.startswith("http")]
    missing = [t for t in targets if not (page.parent / t.split("#")[0]).exists()]
    assert not missing


def test_every_command_in_a_code_block_parses_with_its_commands_flags():
    commands = [(page.name, words) for page in PAGES for words in code_commands(page)]
    assert len(commands) >= 4  # the README's main command and two student searches, the cluster's search
    for page, (name, *argv) in commands:
        try:
            importlib.import_module(MODULES[name]).parser().parse_args(argv)
        except SystemExit as exit:
            pytest.fail(f"{page}: `{name} {' '.join(argv)}` does not parse (exit {exit.code})")


def test_a_wrong_flag_in_a_docs_command_would_be_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\n./run search --task rte --space s.py --no-such-flag 3\n"
                    "python -m experiments.paper --tasks rte --no-such-flag\n```\n")
    commands = code_commands(page)
    assert [name for name, *_ in commands] == ["search", "experiments.paper"]
    for name, *argv in commands:
        with pytest.raises(SystemExit):
            importlib.import_module(MODULES[name]).parser().parse_args(argv)


@pytest.mark.parametrize("name", MODULES)
def test_help_gives_every_options_default(name, capsys):
    """`--help` is the reference: each option says its default, or what happens without it."""
    import argparse

    parser = importlib.import_module(MODULES[name]).parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "options:" in capsys.readouterr().out
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction) or action.required:
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
            continue  # off unless given
        assert re.search(r"default|without it", action.help or ""), f"{name} {action.option_strings[0]}: {action.help}"
