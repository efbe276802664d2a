"""docs/errors.md documents every exception class of ppl.errors, with the message it really prints.

Each class has a section ``## `Name``` whose ```python block triggers it; the ```text block right under a
```python block is what that block prints, checked here against a fresh run (whitespace and ``0x...``
addresses aside), so the page cannot show a message ppl no longer gives. (tests/test_docs.py runs the page
too; this file checks what it prints.)
"""

import contextlib
import inspect
import io
import pathlib
import re

import ppl.errors

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "errors.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
HEADING = re.compile(r"^## `(\w+)`\s*$", re.M)
TREE_LINE = re.compile(r"^[\s│├└─]*(\w+)(?: \((.*)\))?$")


def error_classes() -> dict[str, type]:
    """Every exception class defined in ppl.errors, by name."""
    return {name: value for name, value in vars(ppl.errors).items()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == "ppl.errors"}


def fences(text: str) -> list[tuple[str, str, int, int]]:
    """The page's fenced blocks in order: (language, body, start, end)."""
    return [(match.group(1), match.group(2), match.start(), match.end()) for match in FENCE.finditer(text)]


def sections(text: str) -> dict[str, str]:
    """``{class name: the text of its section}`` for every ``## `Name``` heading."""
    marks = [(match.group(1), match.start()) for match in HEADING.finditer(text)]
    ends = [start for _, start in marks[1:]] + [len(text)]
    return {name: text[start:end] for (name, start), end in zip(marks, ends)}


def normalise(text: str) -> str:
    return re.sub(r"0x[0-9a-fA-F]+", "0x...", " ".join(text.split()))


def test_every_error_class_has_a_section():
    documented = sections(PAGE.read_text())
    missing = sorted(set(error_classes()) - set(documented))
    assert not missing, (f"docs/errors.md does not document {missing}: add a section '## `Name`' for each, with a "
                         "```python block that triggers it (try/except, print(err)) and the ```text block it prints.")
    stale = sorted(set(documented) - set(error_classes()))
    assert not stale, f"docs/errors.md documents {stale}, which ppl.errors no longer defines."


def test_each_section_triggers_its_class_in_python():
    for name, section in sections(PAGE.read_text()).items():
        code = "\n".join(body for language, body, _, _ in fences(section) if language == "python")
        assert f"ppl.errors.{name}" in code, (f"the section on {name} in docs/errors.md needs a ```python block "
                                              f"that catches it (except ppl.errors.{name} as err).")


def test_the_hierarchy_shown_is_the_hierarchy_defined():
    classes = error_classes()
    tree = next(body for language, body, _, _ in fences(PAGE.read_text()) if language == "text" and "PPLError" in body)
    parents, shown = [], {}
    for line in tree.splitlines():
        match = TREE_LINE.match(line)
        assert match, f"cannot read the hierarchy line {line!r} of docs/errors.md"
        depth = (len(line) - len(line.lstrip("│├└─ "))) // 4
        name, builtins = match.group(1), set(re.findall(r"\w+", match.group(2) or "")) - {"also"}
        del parents[depth:]
        shown[name] = (parents[-1] if parents else None, builtins)
        parents.append(name)
    assert set(shown) == set(classes), f"the hierarchy on docs/errors.md shows {sorted(shown)}, not {sorted(classes)}"
    for name, cls in classes.items():
        parent = next((base.__name__ for base in cls.__bases__ if base.__name__ in classes), None)
        builtins = {base.__name__ for base in cls.__bases__ if base.__module__ == "builtins"}
        assert shown[name] == (parent, builtins), (
            f"docs/errors.md shows {name} under {shown[name][0]} with builtins {sorted(shown[name][1])}; "
            f"ppl.errors defines it under {parent} with {sorted(builtins)}")


def test_the_messages_shown_are_the_messages_raised():
    text = PAGE.read_text()
    blocks = fences(text)
    namespace = {"__name__": "docs_errors"}
    checked, wrong = 0, []
    for index, (language, body, _, end) in enumerate(blocks):
        if language != "python":
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(body, f"errors.md[python block at {index}]", "exec"), namespace)  # noqa: S102
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if following is None or following[0] != "text" or text[end:following[2]].strip():
            continue  # a python block not followed directly by its output
        checked += 1
        if normalise(printed.getvalue()) != normalise(following[1]):
            first_line = body.strip().splitlines()[0]
            wrong.append(f"the block starting {first_line!r} now prints:\n{printed.getvalue()}"
                         f"but the page shows:\n{following[1]}")
    assert checked >= len(error_classes()), f"only {checked} blocks of docs/errors.md show their output"
    assert not wrong, ("docs/errors.md shows messages ppl no longer prints; update the ```text block under each "
                       "block (wrapping is free):\n\n" + "\n\n".join(wrong))
