"""Section 13.3, object detection and bounding boxes.

Boxes are corners ``(x1, y1, x2, y2)`` (upper-left, lower-right; x to the right, y down) or
centres ``(cx, cy, w, h)``. ``box_corner_to_center`` / ``box_center_to_corner`` convert between
the two for any ``(..., 4)`` array; ``bbox_to_rect`` makes a matplotlib rectangle and
``show_bboxes`` draws labelled boxes on an axes. All accept MXNet and NumPy arrays.

The sample image ``img/catdog.jpg`` (a dog on the left, a cat on the right; see
``img/README.md``) has the boxes ``DOG_BBOX`` and ``CAT_BBOX`` in pixels.
"""
import numpy as onp

from ._arrays import host, like
from .plot import plt

__all__ = ['bbox_to_rect', 'box_corner_to_center', 'box_center_to_corner', 'show_bboxes',
           'read_image', 'DOG_BBOX', 'CAT_BBOX']

#: Pixel boxes ``(x1, y1, x2, y2)`` of the dog and the cat in ``img/catdog.jpg`` (728 x 561).
DOG_BBOX, CAT_BBOX = [20, 100, 330, 561], [380, 150, 690, 390]


def _check4(boxes, name='boxes'):
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f'{name} must have shape (..., 4), got {tuple(boxes.shape)}')


def box_corner_to_center(boxes):
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)`` for ``boxes (..., 4)``; same kind and shape."""
    b = host(boxes, None)
    _check4(b)
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    out = onp.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)
    return like(out, boxes)


def box_center_to_corner(boxes):
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)`` for ``boxes (..., 4)``; same kind and shape."""
    b = host(boxes, None)
    _check4(b)
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    out = onp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    return like(out, boxes)


def bbox_to_rect(bbox, color):
    """Convert a box ``(x1, y1, x2, y2)`` to a matplotlib ``Rectangle`` (not filled)."""
    x1, y1, x2, y2 = (float(v) for v in host(bbox, None).reshape(-1)[:4])
    return plt.Rectangle(xy=(x1, y1), width=x2 - x1, height=y2 - y1, fill=False,
                         edgecolor=color, linewidth=2)


def show_bboxes(axes, bboxes, labels=None, colors=None):
    """Draw ``bboxes`` (an (N, 4) array or a list of boxes, MXNet or NumPy) on ``axes``.

    ``labels``: a string or a list (one per box); ``colors``: a color or a list, cycled
    (default blue, green, red, magenta, cyan).
    """
    def _make_list(obj, default_values=None):
        if obj is None:
            obj = default_values
        elif not isinstance(obj, (list, tuple)):
            obj = [obj]
        return obj

    labels = _make_list(labels)
    colors = _make_list(colors, ['b', 'g', 'r', 'm', 'c'])
    for i, bbox in enumerate(bboxes):
        color = colors[i % len(colors)]
        rect = bbox_to_rect(bbox, color)
        axes.add_patch(rect)
        if labels and len(labels) > i:
            text_color = 'k' if color == 'w' else 'w'
            axes.text(rect.xy[0], rect.xy[1], labels[i], va='center', ha='center',
                      fontsize=9, color=text_color, bbox=dict(facecolor=color, lw=0))
    return axes


def read_image(name='catdog.jpg'):
    """A sample image from the repository's ``img/`` folder as a uint8 NumPy ``(H, W, 3)``."""
    from PIL import Image

    from .hub import img_path
    with Image.open(img_path(name)) as im:
        return onp.asarray(im.convert('RGB'))
