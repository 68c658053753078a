"""Bananas with instance masks: the twin that trains the Mask R-CNN head of section 13.8.4.

The real banana data set has boxes only. This twin draws crescents (random curvature,
angle, length, thickness, shading, brown tips) on cluttered backgrounds and records each
banana's pixels, in the banana CSV layout plus one mask PNG per image:

``banana-masks/bananas_{train,val}/``
  ``label.csv``     ``img_name,label,xmin,ymin,xmax,ymax`` in pixels (``x2``/``y2``
                    exclusive), one row per banana, as ``banana-detection``
  ``images/<k>.png`` the RGB image
  ``masks/<k>.png``  uint8 instance map: 0 background, ``j`` = the ``j``-th row of that image
                    in ``label.csv`` (VOC's ``SegmentationObject`` convention)

The backgrounds hold distractors that a colour rule cannot tell from bananas: yellow discs
and yellow bars (straight, not curved) next to blue/green/red/grey shapes. Trivial baseline
for the masks: the filled box of each banana (a crescent fills about half of its box).
"""
import os

import numpy as onp

from ..hub import register_twin

__all__ = ['render_banana_masks', 'make_banana_masks', 'read_banana_masks']


def _crescent(rng, length):
    """One banana: ``(mask (P, P) bool, colour (P, P, 3))`` in a square patch."""
    P = int(onp.ceil(length * 1.2)) + 2
    yy, xx = onp.mgrid[0:P, 0:P].astype(onp.float32) - (P - 1) / 2
    theta = rng.uniform(0, 2 * onp.pi)
    along = onp.cos(theta) * xx + onp.sin(theta) * yy
    across = -onp.sin(theta) * xx + onp.cos(theta) * yy
    half_arc = rng.uniform(0.6, 1.1)
    radius = length / 2 / onp.sin(half_arc)
    # the circle's centre sits `radius - sag/2` below the patch centre, so the arc is centred
    centre = radius - radius * (1 - onp.cos(half_arc)) / 2
    r = onp.hypot(along, across + centre)
    phi = onp.arctan2(along, across + centre)
    taper = onp.sqrt(onp.maximum(onp.cos(onp.clip(phi / half_arc, -1, 1) * onp.pi / 2), 0))
    half_width = length * rng.uniform(0.08, 0.13) * taper + 0.7
    band = (r - radius) / half_width
    mask = (abs(band) < 1) & (abs(phi) < half_arc)
    base = onp.array([235, 200, 45]) * rng.uniform(0.75, 1.05) + rng.uniform(-15, 15, 3)
    colour = base * (1 - 0.35 * band ** 2)[..., None]
    colour[abs(phi) > half_arc * 0.88] = onp.array([95, 65, 25]) * rng.uniform(0.7, 1.2)
    return mask, colour


def _background(rng, edge, grid):
    yy, xx = grid
    c0, c1 = rng.uniform(0, 210, 3), rng.uniform(0, 210, 3)
    a = rng.uniform(0, 2 * onp.pi)
    t = onp.cos(a) * xx + onp.sin(a) * yy
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    for _ in range(rng.integers(1, 5)):
        cx, cy, r = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.04, 0.12)]
        yellow = rng.uniform() < 0.4
        colour = (onp.array([235, 200, 45]) if yellow else
                  onp.array([[40, 60, 200], [40, 160, 60], [190, 40, 40],
                             [120, 120, 120]][rng.integers(4)])) * rng.uniform(0.7, 1.1)
        kind = rng.integers(2)
        if kind == 0:      # disc
            m = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
        else:              # a straight bar at a random angle
            b = rng.uniform(0, onp.pi)
            u = onp.cos(b) * (xx - cx) + onp.sin(b) * (yy - cy)
            v = -onp.sin(b) * (xx - cx) + onp.cos(b) * (yy - cy)
            m = (abs(u) < r * 1.5) & (abs(v) < r * 0.3)
        img[m] = colour
    return img + rng.normal(0, rng.uniform(2, 10), img.shape)


def render_banana_masks(num, edge=64, seed=0, max_objects=2, min_size=0.25, max_size=0.5):
    """Draw ``num`` images; return ``(images, boxes, masks)``.

    ``images (num, edge, edge, 3)`` uint8; ``boxes``: per image ``(k, 4)`` int pixel corners
    ``(x1, y1, x2, y2)``, exclusive ends; ``masks``: per image ``(k, edge, edge)`` bool, one
    plane per banana (bananas never overlap, so each pixel has at most one owner).
    """
    rng = onp.random.default_rng(seed)
    grid = onp.mgrid[0:edge, 0:edge].astype(onp.float32) / edge
    images = onp.empty((num, edge, edge, 3), onp.uint8)
    all_boxes, all_masks = [], []
    for i in range(num):
        img = _background(rng, edge, grid)
        k = int(rng.integers(1, max_objects + 1))
        boxes, masks = [], []
        taken = onp.zeros((edge, edge), bool)
        for _ in range(k):
            for _attempt in range(30):
                patch, colour = _crescent(rng, rng.uniform(min_size, max_size) * edge)
                ys, xs = onp.nonzero(patch)
                y0, x0 = ys.min(), xs.min()
                h, w = ys.max() - y0 + 1, xs.max() - x0 + 1
                if h > edge or w > edge:
                    continue
                top, left = int(rng.integers(0, edge - h + 1)), int(rng.integers(0, edge - w + 1))
                box = onp.array([left, top, left + w, top + h])
                if taken[top:top + h, left:left + w].any():   # boxes never overlap
                    continue
                m = onp.zeros((edge, edge), bool)
                m[top:top + h, left:left + w] = patch[y0:y0 + h, x0:x0 + w]
                img[m] = colour[y0:y0 + h, x0:x0 + w][patch[y0:y0 + h, x0:x0 + w]]
                taken[top:top + h, left:left + w] = True
                boxes.append(box)
                masks.append(m)
                break
        all_boxes.append(onp.array(boxes, onp.int64).reshape(-1, 4))
        all_masks.append(onp.array(masks, bool).reshape(-1, edge, edge))
        images[i] = onp.clip(img, 0, 255).astype(onp.uint8)
    return images, all_boxes, all_masks


def _write_png(path, arr):
    from PIL import Image
    Image.fromarray(arr).save(path + '.tmp', format='PNG', compress_level=1)
    os.replace(path + '.tmp', path)


def _write_split(folder, images, boxes, masks):
    for sub in ('images', 'masks'):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    rows = ['img_name,label,xmin,ymin,xmax,ymax']
    for k, (img, box, mask) in enumerate(zip(images, boxes, masks)):
        name = f'{k}.png'
        _write_png(os.path.join(folder, 'images', name), img)
        # instance map: plane j (0-based) -> value j + 1
        ids = (mask * onp.arange(1, len(mask) + 1)[:, None, None]).sum(axis=0)
        _write_png(os.path.join(folder, 'masks', name), ids.astype(onp.uint8))
        rows += [f'{name},0,{x1},{y1},{x2},{y2}' for x1, y1, x2, y2 in box.tolist()]
    tmp = os.path.join(folder, 'label.csv.tmp')
    with open(tmp, 'w') as f:
        f.write('\n'.join(rows) + '\n')
    os.replace(tmp, os.path.join(folder, 'label.csv'))


def make_banana_masks(root, seed=0, num_train=256, num_val=64, edge=64, max_objects=2):
    """Write ``root/banana-masks/bananas_{train,val}/`` (see the module docstring)."""
    out = os.path.join(root, 'banana-masks')
    for split, n, s in (('train', num_train, seed * 2 + 1), ('val', num_val, seed * 2 + 2)):
        _write_split(os.path.join(out, f'bananas_{split}'),
                     *render_banana_masks(n, edge, s, max_objects))
    return out


def read_banana_masks(folder):
    """Read one split folder; return ``(images, labels, masks)`` as NumPy arrays.

    ``images (N, H, W, 3)`` uint8, ``labels (N, m, 5)`` float32 rows ``(class, x1, y1, x2,
    y2)`` with corners in [0, 1], padded with -1 rows, ``masks (N, m, H, W)`` float32 0/1,
    padded with zero planes. ``m`` is the largest object count. A mask that does not
    match its ``label.csv`` rows (an instance id without a row, or a row without pixels)
    raises ``ValueError`` naming the file.
    """
    from PIL import Image

    from ..bananas import read_label_csv
    csv_path = os.path.join(folder, 'label.csv')
    objects = read_label_csv(csv_path)
    m = max(len(v) for v in objects.values())
    images, labels, masks = [], [], []
    for name, rows in objects.items():
        img = onp.asarray(Image.open(os.path.join(folder, 'images', name)).convert('RGB'))
        mask_path = os.path.join(folder, 'masks', name)
        ids = onp.asarray(Image.open(mask_path))
        h, w = img.shape[:2]
        if ids.shape != (h, w) or ids.max() > len(rows):
            raise ValueError(f'{mask_path}: shape {ids.shape}, largest id {ids.max()}; '
                             f'expected ({h}, {w}) and ids <= {len(rows)} (rows of {name} '
                             f'in {csv_path})')
        planes = ids[None] == onp.arange(1, m + 1)[:, None, None]          # (m, H, W)
        empty = ~planes[:len(rows)].any(axis=(1, 2))
        if empty.any():
            raise ValueError(f'{mask_path}: no pixel for object {int(onp.argmax(empty)) + 1} '
                             f'(line {rows[int(onp.argmax(empty))][0]} of {csv_path})')
        lab = onp.full((m, 5), -1, onp.float32)
        lab[:len(rows)] = onp.array([r[1:] for r in rows], onp.float32) / [1, w, h, w, h]
        images.append(img)
        labels.append(lab)
        masks.append(planes.astype(onp.float32))
    return onp.stack(images), onp.stack(labels), onp.stack(masks)


register_twin('banana-masks', make_banana_masks, 'banana-masks')
