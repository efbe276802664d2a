"""Run every ```python block in docs/ and README.md, in order, one namespace per file.

The inference guide, the longest, runs from ``test_docs_inference.py`` so that
pytest-xdist (``--dist loadfile``) can give it a worker of its own. The two longest
guides (composition, inference: about two minutes each on the 2-core CPU) run in the
slow pass (``pytest -m slow``, which CI runs), to keep the default run under ten minutes.
"""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
SEPARATE = {"inference.md",  # run by test_docs_inference.py
            "extending.md"}  # its blocks are excerpts of examples/extending_*.py, run by test_extending.py
LONG = {"composition.md"}  # run in the slow pass


def blocks(page):
    return BLOCK.findall(page.read_text())


def run_page(page):
    namespace = {"__name__": f"docs_{page.stem}"}
    for index, source in enumerate(blocks(page)):
        code = compile(source, f"{page.name}[block {index}]", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation


def run_page_in_a_child(page):
    """``run_page`` in a fresh Python process: the long guides run in the slow pass after other workloads, and
    a native crash there (a signal) must fail this test with its output, not take the pytest worker down."""
    done = subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = [{str(ROOT / 'tests')!r}, "
                           f"{str(ROOT)!r}]; from test_docs import run_page, ROOT; run_page(ROOT / 'docs' / "
                           f"{page.name!r})"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, f"{page.name}: exit status {done.returncode}\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-6000:]}"


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p.name in LONG else p
                                  for p in PAGES if blocks(p) and p.name not in SEPARATE], ids=lambda p: p.name)
def test_every_snippet_runs(page, capsys):
    if page.name in LONG:
        run_page_in_a_child(page)
    else:
        run_page(page)
