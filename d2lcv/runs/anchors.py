"""``d2lcv run anchors``: section 13.4 (anchor boxes, labelling, NMS) on the cat-and-dog image.

Draws the chapter's figures and checks, on the chapter's own examples, that d2lcv's
implementation and MXNet's operators agree; times both on a small TinySSD-like batch.
"""
import time

import numpy as onp
from mxnet import np

from .. import anchors as A
from ..bbox import read_image, show_bboxes
from ..plot import plt, set_figsize

__all__ = ['NAME', 'SECTION', 'TITLE', 'GROUND_TRUTH', 'LABEL_ANCHORS', 'NMS_ANCHORS',
           'NMS_PROBS', 'run']

NAME = 'anchors'
SECTION = '13.4'
TITLE = 'Anchor boxes'

GROUND_TRUTH = [[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]]
LABEL_ANCHORS = [[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                 [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]]
NMS_ANCHORS = [[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95], [0.15, 0.3, 0.62, 0.91],
               [0.55, 0.2, 0.9, 0.88]]
NMS_PROBS = [[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]]


def _image_axes(img):
    set_figsize()
    fig = plt.figure()
    ax = fig.gca()
    ax.imshow(img)
    return fig, ax


def run(run):
    rep = run.report
    img = read_image('catdog.jpg')
    h, w = img.shape[:2]
    bbox_scale = onp.array((w, h, w, h), 'float32')
    X = np.zeros((1, 3, h, w))
    Y = A.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5], impl='d2lcv')
    Y_op = A.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5], impl='npx')
    rep.metric('num_anchors', int(Y.shape[1]))
    rep.metric('prior_max_abs_diff_vs_npx', float(onp.abs((Y - Y_op).asnumpy()).max()))
    boxes = Y.reshape(h, w, 5, 4)
    rep.metric('anchor_250_250_0', [round(float(v), 2) for v in boxes[250, 250, 0, :]])
    fig, ax = _image_axes(img)
    show_bboxes(ax, boxes[250, 250, :, :] * np.array(bbox_scale),
                ['s=0.75, r=1', 's=0.5, r=1', 's=0.25, r=1', 's=0.75, r=2', 's=0.75, r=0.5'])
    rep.figure('anchors_250_250', fig, 'the five anchors centred on pixel (250, 250)')

    gt, anc = onp.array(GROUND_TRUTH, 'float32'), onp.array(LABEL_ANCHORS, 'float32')
    fig, ax = _image_axes(img)
    show_bboxes(ax, gt[:, 1:] * bbox_scale, ['dog', 'cat'], 'k')
    show_bboxes(ax, anc * bbox_scale, ['0', '1', '2', '3', '4'])
    rep.figure('label_anchors', fig, 'ground truth (black) and anchors A0-A4 of 13.4.3')
    ours = A.multibox_target(anc[None], gt[None], impl='d2lcv')
    op = A.multibox_target(anc[None], gt[None], impl='npx')
    rep.metric('target_class_labels', ours[2][0].tolist())
    rep.metric('target_max_abs_diff_vs_npx',
               float(max(onp.abs(a - b).max() for a, b in zip(ours, op))))

    nms_anc, probs = onp.array(NMS_ANCHORS, 'float32'), onp.array(NMS_PROBS, 'float32')
    fig, ax = _image_axes(img)
    show_bboxes(ax, nms_anc * bbox_scale, ['dog=0.9', 'dog=0.8', 'dog=0.7', 'cat=0.9'])
    rep.figure('before_nms', fig, 'predicted boxes and confidences before NMS')
    output = A.multibox_detection(probs[None], onp.zeros((1, 16), 'float32'), nms_anc[None],
                                  nms_threshold=0.5, impl='d2lcv')
    output_op = A.multibox_detection(probs[None], onp.zeros((1, 16), 'float32'), nms_anc[None],
                                     nms_threshold=0.5, impl='npx')
    rep.metric('detection_rows', onp.round(output[0].astype(float), 2).tolist())
    rep.metric('detection_max_abs_diff_vs_npx', float(onp.abs(output - output_op).max()))
    fig, ax = _image_axes(img)
    for row in output[0]:
        if row[0] == -1:
            continue
        label = ('dog=', 'cat=')[int(row[0])] + str(round(float(row[1]), 2))
        show_bboxes(ax, [row[2:] * bbox_scale], label)
    rep.figure('after_nms', fig, 'boxes kept by NMS (threshold 0.5)')

    # A small timing on a TinySSD-like batch (the full comparison is benchmarks/).
    from ..anchors import multibox_prior
    sizes = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
    anchors = onp.concatenate([multibox_prior(onp.zeros((1, 1, s, s)), sizes[i], [1, 2, 0.5])
                               for i, s in enumerate([32, 16, 8, 4, 1])], axis=1)
    rng = onp.random.RandomState(0)
    B = 8
    labels = -onp.ones((B, 3, 5), 'float32')
    for b in range(B):
        xy = rng.uniform(0, 0.7, 2)
        labels[b, 0] = [0, xy[0], xy[1], xy[0] + 0.2, xy[1] + 0.2]
    times = {}
    for impl in A.IMPLS:
        A.multibox_target(anchors, labels, impl=impl)
        t = time.perf_counter()
        for _ in range(3):
            A.multibox_target(anchors, labels, impl=impl)
        times[impl] = (time.perf_counter() - t) / 3
    rep.metric('multibox_target_ms_d2lcv_batch8', round(1e3 * times['d2lcv'], 2))
    rep.metric('multibox_target_ms_npx_batch8', round(1e3 * times['npx'], 2))
    rep.note('Chapter examples (normalised boxes of 13.4.3 and 13.4.4) computed with d2lcv and '
             'with the npx operators; the *_diff_vs_npx metrics are their largest differences. '
             f'Timing: multibox_target on {B} images x {anchors.shape[1]} anchors (TinySSD '
             'anchors), mean of 3 calls on the host CPU; see benchmarks/bench_anchors.py for '
             'the full comparison. The image is a composite stand-in (img/README.md).')
