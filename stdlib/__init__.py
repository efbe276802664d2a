"""ppl's standard library of perceptual primitives (digits, shapes, sequences).

Each primitive is an ordinary ``@ppl.model`` written with the public language, so
it can be read, used and extended like any user model. The modules arrive with
their issues; this package is importable from the start.
"""
