"""The API reference builds from the docstrings (docs/build_api.py, pdoc) without warnings, with a page per module.

The full build (with the search index and the source views) runs in .ci/run; this one leaves those out to stay
cheap (a few seconds: the modules are imported and each page rendered once).
"""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_builder():
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    return builder


def test_the_reference_builds_with_a_page_for_every_module_and_the_key_names(tmp_path):
    builder = load_builder()
    unexpected, _ = builder.build(tmp_path, search=False, show_source=False)
    assert not unexpected, "pdoc warned:\n" + "\n".join(unexpected)

    index = (tmp_path / "index.html").read_text()
    for name in builder.module_names():
        page = tmp_path / f"{name.replace('.', '/')}.html"
        assert page.is_file(), f"no page for {name}"
        assert f'href="{name.replace(".", "/")}.html"' in index, f"the index does not link {name}"
    for page, names in {"ppl.html": ["model", "sample", "ChoiceMap", "Trace"],
                        "ppl/infer.html": ["importance", "smc", "classify"],
                        "ppl/infer/importance.html": ["importance", "ImportanceResult"],
                        "ppl/errors.html": ["PPLError", "UnknownAddressError"],
                        "ppl/testing.html": ["check_interface", "kalman_filter"],
                        "stdlib/sequences/discover.html": ["discover"]}.items():
        text = (tmp_path / page).read_text()
        for name in names:
            assert f'id="{name}"' in text, f"{page} documents no {name}"


def test_the_modules_documented_are_public_and_include_those_left_out_of_all():
    names = load_builder().module_names()
    assert {"ppl", "ppl.testing", "ppl.interface", "ppl.context", "stdlib", "stdlib.shapes"} <= set(names)
    assert not [name for name in names if "__main__" in name or any(p.startswith("_") for p in name.split("."))]
