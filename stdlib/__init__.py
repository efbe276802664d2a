"""ppl's standard library of perceptual primitives (digits, shapes, sequences).

Each primitive is an ordinary ``@ppl.model`` written with the public language, so
it can be read, used and extended like any user model.

- ``stdlib.render``: differentiable soft rasterisation (shapes, strokes, a Gaussian pen).
- ``stdlib.digits``: stroke models of the digits 0-9, fitting from a few
  examples, recognition by analysis by synthesis (``docs/digits.md``).
"""
