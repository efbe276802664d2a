"""The inference guide's ```python blocks, in order, in one namespace (see test_docs.py)."""

from test_docs import ROOT, run_page


def test_every_snippet_of_the_inference_guide_runs(capsys):
    run_page(ROOT / "docs" / "inference.md")
