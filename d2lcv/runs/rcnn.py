"""``d2lcv run rcnn``: section 13.8, RoI pooling and RoIAlign on the chapter's example."""
import numpy as onp

from .. import rcnn
from ..plot import plt

NAME = 'rcnn'
SECTION = '13.8'
TITLE = 'Region-based CNNs (R-CNNs)'


def _show(ax, mat, title):
    ax.imshow(mat, cmap='viridis')
    for (i, j), v in onp.ndenumerate(mat):
        ax.text(j, i, f'{v:g}', ha='center', va='center', color='w', fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def run(ctx):
    rep = ctx.report
    X = onp.arange(16, dtype='float32').reshape(1, 1, 4, 4)
    # column 0 is the index of the image in the batch (the chapter says "category": ERRATA)
    rois = onp.array([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]], 'float32')
    pooled = rcnn.roi_pool(X, rois, pooled_size=(2, 2), spatial_scale=0.1, impl='d2lcv')
    pooled_op = rcnn.roi_pool(X, rois, pooled_size=(2, 2), spatial_scale=0.1, impl='npx')
    aligned = rcnn.roi_align(X, rois, pooled_size=(2, 2), spatial_scale=0.1,
                              impl='d2lcv')
    aligned_op = rcnn.roi_align(X, rois, pooled_size=(2, 2), spatial_scale=0.1, impl='npx')
    rep.metric('roi_pool', pooled[:, 0].tolist())
    rep.metric('roi_pool_max_abs_diff_vs_npx', float(onp.abs(pooled - pooled_op).max()))
    rep.metric('roi_align', onp.round(aligned[:, 0], 4).tolist())
    rep.metric('roi_align_max_abs_diff_vs_mxnet', float(onp.abs(aligned - aligned_op).max()))
    fig, axes = plt.subplots(1, 5, figsize=(10, 2.3))
    _show(axes[0], X[0, 0], 'X (4x4)')
    for k in range(2):
        _show(axes[1 + k], pooled[k, 0], f'RoI pooling, region {k}')
        _show(axes[3 + k], aligned[k, 0], f'RoIAlign, region {k}')
    rep.figure('roi_pooling', fig, 'the chapter\'s 4x4 feature map and its two regions '
               '(0, 0, 20, 20) and (0, 10, 30, 30) at spatial scale 0.1, pooled to 2x2')
    rep.note('RoI pooling rounds the scaled corners (half away from zero) and takes the max '
             'of each sub-window; RoIAlign averages bilinear samples without rounding.')
