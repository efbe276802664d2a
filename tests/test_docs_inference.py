"""The inference guide's ```python blocks, in order, in one namespace (see test_docs.py)."""

import pytest
from test_docs import ROOT, run_page_in_a_child


@pytest.mark.slow  # about two minutes on the 2-core CPU: the slow pass (CI runs it)
def test_every_snippet_of_the_inference_guide_runs(capsys):
    run_page_in_a_child(ROOT / "docs" / "inference.md")
