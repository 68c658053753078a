"""Synthetic CIFAR-10 twin in Gluon's binary format (``cifar-10-batches-bin``).

Each record is one label byte followed by 3,072 bytes: the red, green and blue 32x32 planes,
exactly as in the real ``data_batch_{1..5}.bin`` / ``test_batch.bin``.

Classes differ only in shape (:data:`SHAPES`: a cross, a square, a triangle, ...): each
image is a random crop of one of scikit-image's photos with the class's shape cut out of
*another* random photo and pasted on it, at a random position, size (radius 11-14 pixels),
tilt (up to 15 degrees either way: upright objects, as CIFAR's photos mostly are; 13.1's
flips add the mirror images) and stretch, with blur, noise and, on a few images, an
occluding photo strip. Figure and ground always differ in mean luminance by :data:`CONTRAST`
grey levels, the figure brighter or darker at random and both at a random overall
brightness; their photo textures are damped so that the outline is the strongest edge.
Colour and brightness therefore carry no label: a colour-histogram nearest neighbour scores
near chance (see :class:`d2lcv.synth.baselines.HistogramNN`), while a CNN learns the shapes
(ResNet-18 above 0.5 after two epochs of 640 images; why the contrast matters: with two
undamped photo textures and no guaranteed contrast, the same ResNet-18 budget stayed at
chance and a small CNN reached 0.33 after 2,000 images x 8 epochs, 0.65 with the contrast).
"""
import os

import numpy as onp

from ..hub import register_twin
from . import photos

__all__ = ['CLASSES', 'SHAPES', 'CONTRAST', 'shape_field', 'shape_alpha', 'compose', 'make_images',
           'write_batch', 'make_cifar10']

CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck']
#: The shape that stands for each class, in class order.
SHAPES = ['cross', 'square', 'triangle', 'disc', 'star', 'ring', 'crescent', 'frame', 'bar',
          'dumbbell']


def shape_field(kind, u, v):
    """Signed field of ``kind`` in object coordinates (radius ~1): < 0 inside, > 0 outside.

    ``u``, ``v``: arrays of any (equal) shape; returns the same shape.
    """
    r = onp.sqrt(u ** 2 + v ** 2)
    if kind == 'disc':
        return r - 0.9
    if kind == 'ring':
        return abs(r - 0.72) - 0.26
    if kind == 'square':
        return onp.maximum(abs(u), abs(v)) - 0.75
    if kind == 'frame':
        return abs(onp.maximum(abs(u), abs(v)) - 0.68) - 0.2
    if kind == 'triangle':  # equilateral, apex up: three half-planes
        d = [u * onp.cos(a) + v * onp.sin(a) for a in (onp.pi / 2, onp.pi * 7 / 6,
                                                       onp.pi * 11 / 6)]
        return onp.maximum(onp.maximum(d[0], d[1]), d[2]) - 0.5
    if kind == 'cross':
        return onp.minimum(onp.maximum(abs(u) - 0.95, abs(v) - 0.28),
                           onp.maximum(abs(u) - 0.28, abs(v) - 0.95))
    if kind == 'star':
        phi = onp.arctan2(v, u)
        return r - (0.62 + 0.36 * onp.cos(5 * phi))
    if kind == 'crescent':
        return onp.maximum(r - 0.95, 0.75 - onp.sqrt((u - 0.5) ** 2 + v ** 2))
    if kind == 'bar':
        return onp.maximum(abs(u) - 1.0, abs(v) - 0.3)
    if kind == 'dumbbell':
        ends = onp.sqrt((abs(u) - 0.6) ** 2 + v ** 2) - 0.38
        return onp.minimum(ends, onp.maximum(abs(u) - 0.6, abs(v) - 0.1))
    raise ValueError(f'unknown shape {kind!r}; known: {SHAPES}')


def shape_alpha(labels, rng, size=32, shapes=None, radius=(11.0, 14.0), tilt=0.25,
                shift=0.06):
    """Anti-aliased coverage ``(N, size, size)`` float32 of each label's shape.

    Random centre (up to ``shift`` of the side off the middle), radius ``radius`` pixels at
    ``size`` 32 (scaled with ``size``), rotation uniform in ``[-tilt, tilt]`` radians (``pi``:
    any rotation) and a slight anisotropic stretch; drawn at 2x and averaged down.
    ``shapes``: the shape of each class (default :data:`SHAPES`).
    """
    shapes = SHAPES if shapes is None else shapes
    labels = onp.asarray(labels)
    n, S = len(labels), 2 * size
    k = size / 32
    r = rng.uniform(*radius, (n, 1, 1)) * k * 2
    cy, cx = rng.uniform(0.5 * S - S * shift, 0.5 * S + S * shift, (2, n, 1, 1))
    theta = rng.uniform(-tilt, tilt, (n, 1, 1))
    stretch = rng.uniform(0.85, 1.15, (n, 1, 1))
    yy, xx = onp.mgrid[0:S, 0:S].astype(onp.float32) + 0.5
    dy, dx = yy[None] - cy, xx[None] - cx
    u = (onp.cos(theta) * dx + onp.sin(theta) * dy) / (r * stretch)
    v = (-onp.sin(theta) * dx + onp.cos(theta) * dy) / (r / stretch)
    inside = onp.zeros((n, S, S), bool)
    for c in onp.unique(labels):  # one field per class present, vectorised over its images
        m = labels == c
        inside[m] = shape_field(shapes[int(c)], u[m], v[m]) < 0
    return inside.reshape(n, size, 2, size, 2).mean(axis=(2, 4)).astype(onp.float32)


#: Mean luminance difference between figure and ground, in grey levels (of 255).
CONTRAST = 110.0


def _luminance(img, weight):
    """Weighted mean luminance of ``img (H, W, 3)`` over ``weight (H, W, 1)``."""
    lum = img @ onp.array([0.299, 0.587, 0.114], onp.float32)
    return float((lum * weight[..., 0]).sum() / max(float(weight.sum()), 1e-6))


def compose(alpha, rng, occlude=0.05, contrast=CONTRAST, texture=0.2, blur=0.2):
    """Paste photo-textured shapes on photo backgrounds: ``alpha (N, H, W)`` -> uint8 images.

    Object and background are crops of two random photos with independent lighting, their
    textures damped to ``texture`` of the photo's; then the two are shifted so that their mean
    luminances are ``lo`` and ``lo + contrast`` (``lo`` random, which one is the brighter a
    coin flip: the outline is always visible and brightness says nothing about the class);
    an occluding strip of a third photo (probability ``occlude``), blur (std up to ``blur``
    pixels at 32x32) and noise.
    """
    n, H, W = alpha.shape
    out = onp.empty((n, H, W, 3), onp.uint8)
    yy, xx = onp.mgrid[0:H, 0:W].astype(onp.float32)
    lo = rng.uniform(25, 230 - contrast, n)
    obj_bright = rng.random(n) < 0.5
    for i in range(n):  # each image has its own photos
        a = alpha[i][..., None]
        layers = []
        for weight, bright in ((1 - a, not obj_bright[i]), (a, obj_bright[i])):
            p = photos.lighting(rng, photos.crop(rng, H, W, 0.1, 1.0))
            mean = (p * weight).sum((0, 1)) / max(float(weight.sum()), 1e-6)
            p = mean + texture * (p - mean)  # calm texture: the outline is the main edge
            target = lo[i] + (contrast if bright else 0.0)
            layers.append(p + onp.float32(target - _luminance(p, weight)))
        img = layers[0] * (1 - a) + layers[1] * a
        if rng.random() < occlude:  # a strip of another photo across part of the image
            t = rng.uniform(0, onp.pi)
            d = onp.cos(t) * (xx - W / 2) + onp.sin(t) * (yy - H / 2) - rng.uniform(0.25, 0.5) * H
            strip = onp.clip(0.5 - d, 0, 1)[..., None] * (d > -0.2 * H)[..., None]
            occ = photos.lighting(rng, photos.crop(rng, H, W, 0.1, 0.6))
            img = img * (1 - strip) + occ * strip
        out[i] = photos.finish(rng, img, rng.uniform(0, blur) * H / 32, rng.uniform(2, 10))
    return out


def make_images(labels, rng, size=32):
    """Images ``(N, size, size, 3)`` uint8 for integer ``labels (N,)`` in ``range(10)``."""
    return compose(shape_alpha(labels, rng, size), rng)


def write_batch(path, images, labels):
    """Write one Gluon/CIFAR binary batch file (label byte + CHW planes per record)."""
    records = onp.concatenate(
        [onp.asarray(labels, onp.uint8)[:, None],
         images.transpose(0, 3, 1, 2).reshape(len(images), -1)], axis=1)
    tmp = path + '.tmp'
    records.tofile(tmp)
    os.replace(tmp, path)


def make_cifar10(root, seed=0, num_train=1000, num_test=200):
    """Write ``root/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` (+ meta)."""
    rng = onp.random.default_rng(seed)
    out = os.path.join(root, 'cifar-10-batches-bin')
    os.makedirs(out, exist_ok=True)
    train_labels = onp.arange(num_train) % 10
    rng.shuffle(train_labels)
    train_images = make_images(train_labels, rng)
    for k, part in enumerate(onp.array_split(onp.arange(num_train), 5)):
        write_batch(os.path.join(out, f'data_batch_{k + 1}.bin'), train_images[part],
                    train_labels[part])
    test_labels = onp.arange(num_test) % 10
    rng.shuffle(test_labels)
    write_batch(os.path.join(out, 'test_batch.bin'), make_images(test_labels, rng),
                test_labels)
    with open(os.path.join(out, 'batches.meta.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    return out


register_twin('cifar10', make_cifar10, 'cifar-10-batches-bin')
