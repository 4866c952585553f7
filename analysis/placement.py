"""Text that never collides: labels placed beside points without overlapping each other, other
text or the axes' spines, and the check the tests use on every saved figure.

Matplotlib does not move labels out of each other's way. :func:`place_labels` tries, for each
point in turn, a ring of offsets around it (right, left, above, below, then further out) and
keeps the first whose box, in display coordinates, stays inside the axes and clear of every
label and text already drawn and of the plotted lines and the legend; failing that, the first
clear of text only; a label with no spot clear of text is not drawn rather than drawn over
another.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

OFFSETS = [  # points: (dx, dy, horizontal alignment, vertical alignment)
    (7, 3, "left", "bottom"),
    (7, -3, "left", "top"),
    (-7, 3, "right", "bottom"),
    (-7, -3, "right", "top"),
    (0, 9, "center", "bottom"),
    (0, -9, "center", "top"),
    (7, 16, "left", "bottom"),
    (7, -16, "left", "top"),
    (-7, 16, "right", "bottom"),
    (-7, -16, "right", "top"),
    (0, 26, "center", "bottom"),
    (0, -26, "center", "top"),
]


def _renderer(fig: Figure):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def place_labels(
    ax: Axes, points: Sequence[tuple[float, float]], labels: Sequence[str], colors=None, fontsize=9
) -> list[Text]:
    """Label each data point ``(x, y)`` of ``ax`` beside it, clear of other text and inside the
    axes. Returns the labels drawn."""
    renderer = _renderer(ax.figure)
    inside = ax.get_window_extent(renderer)
    taken = [t.get_window_extent(renderer) for t in ax.texts if t.get_visible() and t.get_text()]
    legend = ax.get_legend()
    taken += [legend.get_window_extent(renderer)] if legend is not None else []
    lines = _line_points(ax)
    drawn = []
    for i, ((x, y), label) in enumerate(zip(points, labels, strict=True)):

        def annotate(dx, dy, ha, va, label=label, x=x, y=y, i=i) -> Text:
            return ax.annotate(
                label,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=fontsize,
                color=colors[i] if colors else "black",
            )

        chosen = None  # the first spot clear of text, replaced by the first clear of lines too
        for offset in OFFSETS:
            text = annotate(*offset)
            box = text.get_window_extent(renderer)
            text.remove()
            if _contains(inside, box) and not any(box.overlaps(other) for other in taken):
                if not box.count_contains(lines):
                    chosen = offset
                    break
                chosen = chosen or offset
        if chosen is not None:
            text = annotate(*chosen)
            taken.append(text.get_window_extent(renderer))
            drawn.append(text)
    return drawn


def _line_points(ax: Axes, per_segment: int = 12):
    """The axes' plotted lines as points in display coordinates, segments filled in."""
    chunks = [np.empty((0, 2))]
    for line in ax.get_lines():
        xy = ax.transData.transform(np.asarray(line.get_xydata(), dtype=float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) > 1:
            t = np.linspace(0, 1, per_segment)[:, None, None]
            chunks.append((xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2))
        chunks.append(xy)
    return np.concatenate(chunks)


def _contains(outer: Bbox, inner: Bbox, margin: float = 1.0) -> bool:
    return (
        inner.x0 >= outer.x0 + margin
        and inner.x1 <= outer.x1 - margin
        and inner.y0 >= outer.y0 + margin
        and inner.y1 <= outer.y1 - margin
    )


def drawn_texts(fig: Figure) -> list[Text]:
    """The texts a drawing of ``fig`` actually puts on the page (tick labels outside the view are
    set but never drawn), in drawing order."""
    drawn: dict[int, Text] = {}
    original = Text.draw

    def draw(self, renderer):
        if self.get_visible() and self.get_text().strip():
            drawn[id(self)] = self
        return original(self, renderer)

    Text.draw = draw
    try:
        fig.canvas.draw()
    finally:
        Text.draw = original
    return list(drawn.values())


def collisions(fig: Figure) -> list[str]:
    """What a reader would see as broken text in ``fig``: two texts whose boxes overlap, a text
    reaching outside the figure, a data label (an annotation) crossing its axes' edge."""
    texts = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    boxes = [(t, t.get_window_extent(renderer).shrunk(0.98, 0.9)) for t in texts]
    problems = []
    for t, box in boxes:
        if not _contains(page, box, margin=-1.0):
            problems.append(f"{t.get_text()!r} reaches outside the figure")
        if (
            t.axes is not None
            and t in t.axes.texts
            and not _contains(t.axes.get_window_extent(renderer), box, 0.0)
        ):
            problems.append(f"label {t.get_text()!r} crosses the edge of its axes")
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            if box_a.overlaps(box_b):
                problems.append(f"{a.get_text()!r} overlaps {b.get_text()!r}")
    return problems
