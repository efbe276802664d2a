"""Shapes, scenes and inverse graphics: the spatial face of analysis by synthesis.

=============================  ==============================================================
``circle``, ``ellipse``,       primitives: ppl models with latent centre, size, angle and RGB
``rectangle``, ``triangle``,   colour, returning painters of :mod:`stdlib.render`
``line``                       (:mod:`stdlib.shapes.primitives`)
``scene_model(max_shapes,      a latent number of shapes of latent kinds, in depth order with
size, background)``            ``over`` blending, on a latent backdrop, robust pixels
``make_dataset(key, n, ...)``  seeded scenes with their ground truth (:mod:`stdlib.shapes.scene`)
``draw_with_pillow``,          the same kind of scenes drawn by other software, with the same
``draw_with_matplotlib``       ground truth (:mod:`stdlib.shapes.drawn`)
``parse(key, image, ...)``     the scene that explains an image: a :class:`Scene`
                               (:mod:`stdlib.shapes.parse`)
``house(size)``, ``snowman``   relations worked through: a roof ``ppl.above`` walls, a head
``classify_scenes(key, ...)``  above a body; which one an image shows, by ``ppl.infer.classify``
                               (:mod:`stdlib.shapes.relations`)
=============================  ==============================================================
"""

from stdlib.shapes.drawn import draw_with_matplotlib, draw_with_pillow
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
from stdlib.shapes.relations import (
           RELATIONS,
           RelationDataset,
           classify_scenes,
           house,
           house_parts,
           make_relation_dataset,
           part_centres,
           snowman,
           snowman_parts,
)
from stdlib.shapes.scene import (
           Dataset,
           Shape,
           make_dataset,
           render_shapes,
           scene_model,
           visible_fractions,
)

__all__ = ["KINDS", "PRIMITIVES", "Dataset", "Scene", "Shape", "check_image", "circle", "draw_with_matplotlib",
           "draw_with_pillow", "ellipse", "line", "make_dataset", "outline", "painter_of", "parse", "rectangle",
           "render_shapes", "scene_model", "triangle", "visible_fractions"]
__all__ += ["RELATIONS", "RelationDataset", "classify_scenes", "house", "house_parts", "make_relation_dataset",
            "part_centres", "snowman", "snowman_parts"]
