"""Run every ```python block in docs/ and README.md, in order, one namespace per file.

The inference guide, the longest, runs from ``test_docs_inference.py`` so that
pytest-xdist (``--dist loadfile``) can give it a worker of its own. The two longest
guides (composition, inference: about two minutes each on the 2-core CPU) run in the
slow pass (``pytest -m slow``, which CI runs), to keep the default run under ten minutes.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SEPARATE = {"inference.md"}  # run by test_docs_inference.py
LONG = {"composition.md"}  # run in the slow pass


def blocks(page):
    return BLOCK.findall(page.read_text())


def run_page(page):
    namespace = {"__name__": f"docs_{page.stem}"}
    for index, source in enumerate(blocks(page)):
        code = compile(source, f"{page.name}[block {index}]", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p.name in LONG else p
                                  for p in PAGES if blocks(p) and p.name not in SEPARATE], ids=lambda p: p.name)
def test_every_snippet_runs(page, capsys):
    run_page(page)
