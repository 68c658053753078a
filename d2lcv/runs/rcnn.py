"""``d2lcv run rcnn``: section 13.8, RoI pooling and RoIAlign on the chapter's example, then
a small Faster R-CNN with a Mask R-CNN head trained from scratch.

``--tiny``: ``TinyFasterRCNN(mask=True)`` on the bananas-with-masks twin (256 train / 64 val
images at 64x64, one or two bananas each, 6 epochs, Adam 1e-3: about a minute on a CPU):
curves, proposals, detections with masks, val mAP and mask IoU next to their trivial
baselines. Full run: the real banana data set (boxes only, 256x256, 20 epochs) for the
detector. Options (``--set``): ``num_epochs``, ``edge_size``, ``batch_size``, ``lr``,
``num_train``, ``num_val``, ``roi`` (``align`` or ``pool``).
"""
import time

import numpy as onp

from .. import rcnn
from ..plot import plt
from ..train import batches
from . import choice, pos_float, pos_int

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run', 'train']

NAME = 'rcnn'
SECTION = '13.8'
TITLE = 'Region-based CNNs (R-CNNs)'

OPTIONS = {
    'num_epochs': (pos_int, 'epochs of TinyFasterRCNN (tiny 6, full 20)'),
    'edge_size': (pos_int, 'image side in pixels, a multiple of 32 (tiny 64, full 256)'),
    'batch_size': (pos_int, 'batch size (32)'),
    'lr': (pos_float, 'Adam learning rate (1e-3)'),
    'num_train': (pos_int, 'tiny only: training images of the mask twin (256)'),
    'num_val': (pos_int, 'tiny only: validation images of the mask twin (64)'),
    'roi': (choice('align', 'pool'), "RoIAlign or RoI pooling ('align')"),
}


def _show(ax, mat, title):
    ax.imshow(mat, cmap='viridis')
    for (i, j), v in onp.ndenumerate(mat):
        ax.text(j, i, f'{v:g}', ha='center', va='center', color='w', fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def run(run):
    rep = run.report
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
    train(run)


def train(run):
    """Train TinyFasterRCNN (with the mask head on the twin) and report it."""
    from ..bananas import load_data_bananas
    opt, rep, tiny = run.options, run.report, bool(run.tiny)
    edge = int(opt.get('edge_size', 64 if tiny else 256))
    batch_size = int(opt.get('batch_size', 32))
    num_epochs = int(opt.get('num_epochs', 6 if tiny else 20))
    lr = float(opt.get('lr', 1e-3))
    devices = run.devices[:1]
    if tiny:
        num_train, num_val = int(opt.get('num_train', 256)), int(opt.get('num_val', 64))
        train_iter, val_iter = rcnn.load_data_banana_masks(
            batch_size, num_train=num_train, num_val=num_val, edge=edge)
        what = (f'the bananas-with-masks twin ({num_train} train / {num_val} val images, '
                f'{edge}x{edge}, 1-2 bananas each)')
    else:
        train_iter, val_iter = load_data_bananas(batch_size, edge, tiny=False)
        what = 'the real banana data set (boxes only: no mask head)'
    net = rcnn.TinyFasterRCNN(1, mask=tiny, roi=opt.get('roi', 'align'))
    tik = time.time()
    result = rcnn.train_faster_rcnn(net, train_iter, num_epochs, devices=devices, lr=lr,
                                    val_iter=val_iter, map_every=max(1, num_epochs // 3),
                                    save_path=rep.path('13_8_training.png'), verbose=False)
    minutes = (time.time() - tik) / 60
    rep.attach('13_8_training.png', 'The Animator during training: RPN loss, box-head loss, '
               'class error of the sampled regions, validation mAP@0.5')
    val = rcnn.evaluate_rcnn(net, val_iter, devices=devices)
    for key in ('rpn_loss', 'head_loss', 'mask_loss', 'head_err', 'examples_per_sec'):
        rep.metric(key, round(float(result[key]), 4))
    rep.metric('val_map50', round(val['map50'], 4))
    rep.metric('val_map_0.5:0.95', round(val['map'], 4))
    rep.metric('first_loss', round(result['loss_history'][0], 4))
    rep.metric('last_loss', round(result['loss_history'][-1], 4))
    rep.metric('train_minutes', round(minutes, 2))
    if 'mask_iou' in val:
        rep.metric('val_mask_iou', round(val['mask_iou'], 4))
        rep.metric('val_mask_iou_filled_boxes', round(val['mask_iou_box'], 4))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    ax[0].plot(range(1, num_epochs + 1), result['loss_history'], 'o-')
    ax[0].set_xlabel('epoch')
    ax[0].set_ylabel('training loss per image')
    e, m = zip(*result['map_history'])
    ax[1].plot(e, m, 'o-')
    ax[1].set_xlabel('epoch')
    ax[1].set_ylabel('val mAP@0.5')
    ax[1].set_ylim(0, 1)
    rep.figure('rcnn_curves', fig, 'TinyFasterRCNN: training loss (RPN + box head + mask '
               'head) and validation mAP@0.5')
    _show_predictions(net, val_iter, devices, rep)
    rep.note(f'TinyFasterRCNN (TinySSD\'s base net, an RPN on three anchor scales, '
             f'{net.roi} to 4x4 regions of the stride-4 map, a box head'
             + (', a mask head on 7x7 RoIAlign' if tiny else '')
             + f'), random init, trained {num_epochs} epochs with Adam {lr:g} on {what} in '
             f'{minutes:.1f} min. Trivial baselines: mAP of one centred mean-size box per image '
             '(near 0, see benchmarks/bench_rcnn.py); mask IoU of the same detections\' filled '
             'boxes (val_mask_iou_filled_boxes).')


def _show_predictions(net, val_iter, devices, rep):
    X = next(batches(val_iter))[0][:4]  # the first batch, ImageDetIter or DataLoader alike
    props, _ = net.proposals(X.as_in_ctx(devices[0]), 8)
    det, masks = rcnn.detect(net, X, devices[0])
    imgs = onp.clip(X.transpose(0, 2, 3, 1).asnumpy() / 255, 0, 1)
    h, w = imgs.shape[1:3]
    fig, axes = plt.subplots(2, 4, figsize=(10, 5.2))
    from ..bbox import show_bboxes
    for k in range(len(imgs)):
        axes[0, k].imshow(imgs[k])
        show_bboxes(axes[0, k], props[k] * onp.array([w, h, w, h]), colors=['w'])
        keep = det[k, :, 0] >= 0
        rows = det[k][keep][:1]
        rcnn.display(imgs[k], rows, 0.0, ax=axes[1, k],
                     masks=None if masks is None else masks[k][keep][:1])
    for ax in axes.ravel():
        ax.axis('off')
    rep.figure('rcnn_predictions', fig, 'Top: the 8 best proposals of the RPN. Bottom: the '
               'best detection and its score' + (', with its mask (blue)' if masks is not None
                                                 else ''))
