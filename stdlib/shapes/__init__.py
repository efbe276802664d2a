"""Shapes, scenes and inverse graphics: the spatial face of analysis by synthesis.

=============================  ==============================================================
``circle``, ``ellipse``,       primitives: ppl models with latent centre, size, angle and RGB
``rectangle``, ``triangle``,   colour, returning painters of :mod:`stdlib.render`
``line``                       (:mod:`stdlib.shapes.primitives`)
``scene_model(max_shapes,      a latent number of shapes of latent kinds, in depth order with
size, background)``            ``over`` blending, on a latent backdrop, robust pixels
``make_dataset(key, n, ...)``  seeded scenes with their ground truth (:mod:`stdlib.shapes.scene`)
``parse(key, image, ...)``     the scene that explains an image: a :class:`Scene`
                               (:mod:`stdlib.shapes.parse`)
=============================  ==============================================================
"""

from stdlib.shapes.parse import Scene, check_image, parse
from stdlib.shapes.primitives import (
           KINDS,
           PRIMITIVES,
           circle,
           ellipse,
           line,
           outline,
           painter_of,
           rectangle,
           triangle,
)
from stdlib.shapes.scene import (
           Dataset,
           Shape,
           make_dataset,
           render_shapes,
           scene_model,
           visible_fractions,
)

__all__ = ["KINDS", "PRIMITIVES", "Dataset", "Scene", "Shape", "check_image", "circle", "ellipse", "line",
           "make_dataset", "outline", "painter_of", "parse", "rectangle", "render_shapes", "scene_model", "triangle",
           "visible_fractions"]
