"""Run every ```python block in docs/ and README.md, in order, one namespace per file."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(page):
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_every_snippet_runs(page, capsys):
    namespace = {"__name__": f"docs_{page.stem}"}
    for index, source in enumerate(_blocks(page)):
        code = compile(source, f"{page.name}[block {index}]", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation
