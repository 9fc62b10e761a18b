"""The docs cannot go stale against the command line (issue 32 §2).

- The synopsis in ``docs/usage.md`` lists every command and every option that ``jdsr --help`` and each command's
  ``--help`` show (walked from the typer/click command tree, not from a hand-kept list), and no option that the
  command does not have.
- Every ``jdsr ...`` line of a ``bash`` block in the README and ``docs/`` names a real command and only options it
  has.
- Every relative link in the README and ``docs/`` points at a file that exists, and every ``#anchor`` at a heading
  (or an explicit ``<a id>``) of that file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from jdsr_cli.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
USAGE = ROOT / "docs" / "usage.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
HELP = {"-h", "--help"}  # every command has them; they are not among a command's params
# an option token: -x or --long-name, not the "-x4" inside "imdn-x4" or a path
OPTION = re.compile(r"(?<![\w.:-])--?[A-Za-z][\w-]*")


def _visible(items: Any) -> list[Any]:
    return [item for item in items if not getattr(item, "hidden", False)]


def command_tree() -> dict[tuple[str, ...], Any]:
    """Every visible command of ``jdsr`` by its path (``()`` is ``jdsr`` itself, ``("models", "list")``...)."""
    tree: dict[tuple[str, ...], Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        tree[path] = command
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return tree


TREE = command_tree()
LEAVES = sorted(path for path, command in TREE.items() if not getattr(command, "commands", None))


def options_of(command: Any) -> set[str]:
    """Every spelling of every visible option (``-o``, ``--output``, ``--meta``, ``--no-meta``...)."""
    names: set[str] = set()
    for param in _visible(command.params):
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def arguments_of(command: Any) -> list[str]:
    """The placeholder each argument has in ``--help`` (``INPUT``, ``DATA_DIR``, ``MODEL``...)."""
    return [(param.metavar or param.name).rstrip(".").upper() for param in _visible(command.params)
            if param.param_type_name == "argument"]


def command_path(words: list[str]) -> tuple[str, ...]:
    """The longest run of words after ``jdsr`` that names a command: ``models export MODEL`` → (models, export)."""
    path: tuple[str, ...] = ()
    for word in words:
        if (*path, word) not in TREE:
            break
        path = (*path, word)
    return path


def synopsis() -> dict[tuple[str, ...], str]:
    """The text of each entry of usage.md's synopsis block, by command path (two entries of one path joined)."""
    text = USAGE.read_text(encoding="utf-8")
    section = text.split("\n## Synopsis\n", 1)
    assert len(section) == 2, "docs/usage.md has no '## Synopsis' section"
    block = re.search(r"```text\n(.*?)\n```", section[1].split("\n## ", 1)[0], re.S)
    assert block, "the Synopsis section has no ```text block"
    entries: dict[tuple[str, ...], str] = {}
    current: tuple[str, ...] | None = None
    for line in block.group(1).splitlines():
        if line.startswith("jdsr"):
            current = command_path(line.split()[1:])
            entries[current] = entries.get(current, "") + " " + line
        elif line.strip():
            assert line[0].isspace() and current is not None, f"synopsis line belongs to no command: {line!r}"
            entries[current] += " " + line
        else:
            current = None
    return entries


SYNOPSIS = synopsis()


def test_the_synopsis_has_every_command() -> None:
    missing = [" ".join(("jdsr", *path)) for path in [(), *LEAVES] if path not in SYNOPSIS]
    assert not missing, f"docs/usage.md's synopsis lacks {missing}"


@pytest.mark.parametrize("path", [(), *LEAVES], ids=lambda path: " ".join(("jdsr", *path)))
def test_the_synopsis_lists_every_option_and_argument(path: tuple[str, ...]) -> None:
    command, entry = TREE[path], SYNOPSIS.get(path, "")
    listed = set(OPTION.findall(entry))
    name = " ".join(("jdsr", *path))
    missing = sorted(options_of(command) - listed)
    assert not missing, f"the synopsis of `{name}` lacks {missing} (docs/usage.md)"
    unknown = sorted(listed - options_of(command) - HELP)
    assert not unknown, f"the synopsis of `{name}` lists {unknown}, which `{name} --help` does not have"
    for argument in arguments_of(command):
        assert re.search(rf"\b{re.escape(argument)}\b", entry), f"the synopsis of `{name}` lacks {argument}"


def example_lines() -> list[tuple[str, int, str]]:
    """(file, line number, command line) of every ``jdsr`` line in a bash block of the README and docs/."""
    found = []
    for doc in DOCS:
        block = False
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                block = line.strip() in ("```bash", "```sh", "```console")
                continue
            command = line.split(" #", 1)[0].strip().removeprefix("$ ")
            if "-m jdsr_cli " in command:  # torchrun ... -m jdsr_cli upscale ...
                command = "jdsr " + command.split("-m jdsr_cli ", 1)[1]
            if block and command.startswith("jdsr "):
                found.append((str(doc.relative_to(ROOT)), number, command))
    return found


def test_the_examples_use_real_commands_and_options() -> None:
    examples = example_lines()
    assert len(examples) > 50  # the README and docs/ are full of examples: finding none means the scan broke
    wrong = []
    for doc, number, line in examples:
        words = line.split()[1:]
        path = command_path(words)
        command = TREE[path]
        if getattr(command, "commands", None):
            wrong.append(f"{doc}:{number}: `{line}` names no command")
            continue
        unknown = sorted(set(OPTION.findall(" ".join(words[len(path):]))) - options_of(command) - HELP)
        if unknown:
            wrong.append(f"{doc}:{number}: `{line}`: {unknown} not options of jdsr {' '.join(path)}")
    assert not wrong, "\n".join(wrong)


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file: its headings' slugs (with -1, -2 for repeats) and explicit ids."""
    text = doc.read_text(encoding="utf-8")
    slugs: set[str] = set(re.findall(r"<a (?:id|name)=\"([^\"]+)\"", text))
    seen: dict[str, int] = {}
    block = False
    for line in text.splitlines():
        if line.startswith("```"):
            block = not block
        heading = re.match(r"#{1,6} (.*)", line)
        if block or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def test_relative_links_and_anchors_resolve() -> None:
    broken = []
    for doc in DOCS:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            path = (doc.parent / file).resolve() if file else doc
            where = f"{doc.relative_to(ROOT)}: ({target})"
            if not path.exists():
                broken.append(f"{where}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{where}: no such anchor")
    assert not broken, "\n".join(broken)


def test_readme_is_short_and_points_at_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250, "README.md is what a user reads in five minutes: move the rest to docs/"
    for page in ("usage.md", "training.md", "models.md", "benchmarks.md", "python-api.md"):
        assert f"docs/{page}" in readme, f"the README does not link docs/{page}"
