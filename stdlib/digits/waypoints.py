"""Hand-written stroke prototypes of the digits 0-9 (the zero-shot models of ``stdlib.digits``).

Each digit is 1-3 pen strokes drawn in a *canonical frame*: ``u = (x, y)`` in
``[-1, 1]^2`` with ``x`` to the right and ``y`` **down** (as on the canvas), the
digit's height spanning ``y = -1 .. 1``. A stroke is written as a few
waypoints along the pen's path; :func:`prototype_strokes` resamples every
stroke to ``points`` vertices evenly spaced by arc length, so all classes have
arrays of one shape ``(strokes, points, 2)`` (unused strokes are masked).

Edit ``WAYPOINTS`` (or pass your own dict of the same form) to change a class's
prototype; :func:`stdlib.digits.fit` refines them from examples.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_STROKES", "WAYPOINTS", "prototype_strokes"]

MAX_STROKES = 3


def _ellipse(cx, cy, rx, ry, start_degrees=-90.0, turn=-360.0, n=13):
    angles = np.deg2rad(start_degrees + np.linspace(0.0, turn, n))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


# class -> list of strokes; a stroke is a list of (x, y) waypoints (y down)
WAYPOINTS: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ellipse(0.0, 0.0, 0.55, 0.95)],
    1: [[(0.15, -1.0), (0.0, 0.0), (-0.15, 1.0)]],
    2: [[(-0.5, -0.55), (-0.15, -0.95), (0.3, -0.9), (0.45, -0.45), (0.2, 0.05), (-0.55, 0.95), (0.6, 0.95)]],
    3: [[(-0.5, -0.8), (0.0, -1.0), (0.45, -0.65), (0.35, -0.25), (-0.05, -0.05), (0.45, 0.3), (0.4, 0.75),
         (0.0, 1.0), (-0.5, 0.8)]],
    4: [[(-0.35, -1.0), (-0.55, 0.25), (0.6, 0.25)], [(0.3, -0.7), (0.3, 1.0)]],
    5: [[(0.5, -1.0), (-0.35, -1.0), (-0.45, -0.1), (0.15, -0.25), (0.5, 0.25), (0.35, 0.85), (-0.1, 1.0),
         (-0.5, 0.8)]],
    6: [[(0.4, -1.0), (-0.15, -0.6), (-0.5, 0.2), (-0.35, 0.9), (0.15, 1.0), (0.5, 0.55), (0.3, 0.05),
         (-0.1, 0.0), (-0.45, 0.3)]],
    7: [[(-0.55, -0.95), (0.55, -0.95), (0.3, -0.35), (0.0, 0.35), (-0.15, 1.0)]],
    8: [_ellipse(0.0, -0.5, 0.4, 0.45, start_degrees=90.0), _ellipse(0.0, 0.5, 0.5, 0.5, start_degrees=-90.0)],
    9: [_ellipse(0.0, -0.45, 0.45, 0.5, start_degrees=0.0), [(0.45, -0.5), (0.35, 0.3), (0.2, 1.0)]],
}


def _resample(waypoints, points: int) -> np.ndarray:
    """``points`` vertices evenly spaced by arc length along the polyline ``waypoints``."""
    path = np.asarray(waypoints, dtype=np.float64)
    lengths = np.linalg.norm(np.diff(path, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(lengths)])
    targets = np.linspace(0.0, along[-1], points)
    return np.stack([np.interp(targets, along, path[:, i]) for i in range(2)], axis=1)


def prototype_strokes(points: int = 7, waypoints=None) -> tuple[np.ndarray, np.ndarray]:
    """Stroke vertices ``(10, MAX_STROKES, points, 2)`` and stroke masks ``(10, MAX_STROKES)``.

    A masked (absent) stroke repeats the first stroke's vertices so every array
    is finite; the renderer ignores it.
    """
    waypoints = WAYPOINTS if waypoints is None else waypoints
    strokes = np.zeros((10, MAX_STROKES, points, 2), np.float32)
    mask = np.zeros((10, MAX_STROKES), np.float32)
    for digit in range(10):
        for s in range(MAX_STROKES):
            source = waypoints[digit][s] if s < len(waypoints[digit]) else waypoints[digit][0]
            strokes[digit, s] = _resample(source, points)
            mask[digit, s] = float(s < len(waypoints[digit]))
    return strokes, mask
