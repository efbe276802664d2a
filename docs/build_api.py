"""Build the API reference from the docstrings with pdoc (offline).

    python docs/build_api.py [--output DIR] [--no-search] [--no-source]

writes one HTML page per module of ``ppl`` and ``stdlib`` into DIR (default ``docs/_build/api``; open
``index.html``). Every module is documented except private ones (a name part starting with ``_``) and
``__main__``: also those a package's ``__all__`` leaves out (``ppl.testing``, ``ppl.interface``,
``ppl.context``, ...), which pdoc on its own would skip. Nothing is fetched from the network.

It exits with status 1, listing them, when pdoc warns: a module that does not import, a docstring or
type annotation pdoc cannot read. Warnings that are pdoc's own limitations, or known and not yet fixed,
are in ``KNOWN_WARNINGS``; they are counted, not fatal.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import pkgutil
import re
import sys
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("ppl", "stdlib")
DEFAULT_OUTPUT = ROOT / "docs" / "_build" / "api"

KNOWN_WARNINGS = (
    # pdoc evaluates the string annotations of a NamedTuple's or dataclass's generated __init__ in a namespace
    # without the module's names (they come from `from __future__ import annotations`); the fields are documented
    # all the same.
    re.compile(r"Error parsing type annotation ForwardRef\(.*\) for [\w.]+\.__init__\. Import of [\w.]+ failed: "
               r"name '[\w.]+' is not defined"),
)


def module_names(packages=PACKAGES) -> list[str]:
    """Every public module of ``packages``, packages first, in import order."""
    names = []
    for package in packages:
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return names


def build(output: pathlib.Path = DEFAULT_OUTPUT, *, search: bool = True, show_source: bool = True,
          packages=PACKAGES) -> tuple[list[str], list[str]]:
    """Write the reference into ``output``; return pdoc's warnings as ``(unexpected, known)`` messages."""
    import pdoc.doc
    import pdoc.render

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ppl import __version__

    output = pathlib.Path(output)
    pdoc.render.configure(docformat="google", search=search, show_source=show_source, math=False, mermaid=False,
                          footer_text=f"ppl {__version__}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        modules = {name: pdoc.doc.Module.from_name(name) for name in module_names(packages)}
        for module in modules.values():
            page = output / f"{module.fullname.replace('.', '/')}.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(pdoc.render.html_module(module, modules), encoding="utf-8")
        (output / "index.html").write_text(pdoc.render.html_index(modules), encoding="utf-8")
        if search:
            (output / "search.js").write_text(pdoc.render.search_index(modules), encoding="utf-8")
    pdoc_warnings = [str(w.message) for w in caught if "pdoc" in pathlib.Path(w.filename).parts]
    known = [m for m in pdoc_warnings if any(pattern.search(m) for pattern in KNOWN_WARNINGS)]
    unexpected = [m for m in pdoc_warnings if m not in known]
    return unexpected, known


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT, help="where to write the HTML")
    parser.add_argument("--no-search", action="store_true", help="leave out the search index")
    parser.add_argument("--no-source", action="store_true", help="leave out the 'View Source' sections")
    args = parser.parse_args(argv)
    unexpected, known = build(args.output, search=not args.no_search, show_source=not args.no_source)
    print(f"API reference: {args.output / 'index.html'} ({len(known)} known pdoc warnings ignored)")
    if unexpected:
        print(f"pdoc warned {len(unexpected)} time(s); fix the docstrings or annotations (or, for a limitation of "
              "pdoc, add the warning to KNOWN_WARNINGS in docs/build_api.py):", file=sys.stderr)
        for message in unexpected:
            print(f"  - {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
