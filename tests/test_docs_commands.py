"""Every ``python -m experiments.<cmd> ...`` line in the README and docs/ parses with that command's own parser.

The docs cannot drift from the CLI: each command's ``main`` is called with the documented arguments and
``ArgumentParser.parse_args`` is intercepted right after it succeeds, so nothing runs; an unknown option, a missing
required one or a bad choice makes argparse exit with status 2 and the test names the file, the line and argparse's
message. Placeholders (``<time>``, ``RUN_DIR``) are plain strings to argparse, so they parse like real paths.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"python -m (experiments\.[a-z_]+)\b(.*)")


class _Parsed(Exception):
    """Raised from the intercepted parser once the arguments parsed: the command must not run."""


FENCE = re.compile(r"^ *```[^\n]*\n(.*?)^ *```", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")


def _snippets(text: str) -> list[tuple[int, str]]:
    """Shell snippets with their 1-based line numbers: fenced-block lines (backslash continuations joined), indented
    code lines, and inline code spans (which may wrap across a line break)."""
    out: list[tuple[int, str]] = []
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start(1)) + 1
        pending, start = "", first
        for offset, line in enumerate(block.group(1).splitlines()):
            if not pending:
                start = first + offset
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            out.append((start, pending + line))
            pending = ""
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # keep line numbers
    for number, line in enumerate(prose.splitlines(), 1):
        if line.startswith("    "):
            out.append((number, line))
    for span in INLINE.finditer(prose):
        out.append((prose.count("\n", 0, span.start()) + 1, span.group(1).replace("\n", " ")))
    return out


def documented_commands() -> list[tuple[str, int, str, list[str]]]:
    """(file, line, module, argv) for every documented command."""
    found = []
    for path in DOC_FILES:
        for number, snippet in _snippets(path.read_text()):
            for match in COMMAND.finditer(snippet):
                # Shell comments, pipes, redirections and command separators end a command.
                rest = re.split(r"\s#|\s\||\s>|\s&&|;", match.group(2))[0]
                if "..." in rest or "[" in rest:  # an abbreviated or optional-argument synopsis, not a command
                    continue
                rest = re.sub(r"<[^<>]*>", lambda m: m.group(0).replace(" ", "_"), rest)  # `<probe run>`: one word
                try:
                    argv = shlex.split(rest)
                except ValueError:
                    continue
                found.append((path.relative_to(ROOT).as_posix(), number, match.group(1), argv))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands() -> None:
    """The check is not vacuous: the docs show commands of the main entry points."""
    modules = {module for _, _, module, _ in COMMANDS}
    assert {"experiments.probe", "experiments.trials", "experiments.score", "experiments.steer",
            "experiments.patch", "experiments.compare"} <= modules


@pytest.mark.parametrize("where,line,module,argv", COMMANDS,
                         ids=[f"{f}:{n}" for f, n, _, _ in COMMANDS])
def test_documented_command_parses(where: str, line: int, module: str, argv: list[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):  # noqa: ANN001 - argparse's own signature
        original(self, args, namespace)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    main = importlib.import_module(module).main
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises((_Parsed, SystemExit)) as outcome:
        main(argv)
    if outcome.type is SystemExit and outcome.value.code not in (0, None):  # --help exits 0: it parsed
        pytest.fail(f"{where}:{line}: `python -m {module} {shlex.join(argv)}` does not parse "
                    f"(exit {outcome.value.code}): {stderr.getvalue().strip().splitlines()[-1:]}")


def test_a_wrong_option_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interception lets argparse reject what it should: a made-up option fails like a drifted doc would."""
    with pytest.raises(pytest.fail.Exception, match="does not parse"):
        test_documented_command_parses("x.md", 1, "experiments.score", ["--no-such-option"], monkeypatch)
