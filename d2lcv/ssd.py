"""Section 13.7, single shot multibox detection (SSD): TinySSD, its loss, training, prediction.

The chapter's pieces keep their names: ``cls_predictor``, ``bbox_predictor``,
``flatten_pred``, ``concat_preds``, ``down_sample_blk``, ``base_net``, ``get_blk``,
``blk_forward``, ``TinySSD``, ``calc_loss``, ``cls_eval``, ``bbox_eval``, ``predict``,
``display``. Beyond the chapter:

* ``TinySSD`` is a ``HybridBlock``: ``net.hybridize()`` compiles the convolutional body;
  the anchors depend only on the feature-map shapes, so they are computed once per input
  shape and device and cached (the chapter recomputes them on every forward pass).
* ``SSDLoss``: the chapter's loss (cross-entropy + L1 on masked offsets) and its exercises as
  options: smooth-L1 box loss (``box='smooth_l1'``, ``sigma``), focal loss (``cls='focal'``,
  ``gamma``, ``alpha``), hard negative mining (``negative_ratio``), loss weights.
* ``train_ssd``: the chapter's loop on several devices, with metrics summed on the device
  and read five times an epoch (no host sync per batch), the chapter's printed summary
  (class err, bbox mae, examples/sec), optional validation mAP per epoch.
* The anchor operators come from the one implementation switch of :mod:`d2lcv.anchors`:
  ``impl='npx'`` (MXNet's ``npx.multibox_prior/target/detection``, as in the chapter) or
  ``impl='d2lcv'`` (:mod:`d2lcv.anchors`, same semantics); ``impl=None`` takes the default,
  ``d2lcv.anchors.set_impl`` / ``$D2LCV_ANCHORS_IMPL``.
"""
import os
import types

import numpy as onp
from mxnet import autograd, gluon, init, np, npx
from mxnet.gluon import nn

from ._arrays import host
from ._util import initialized
from .bbox import show_bboxes
from .devices import resolve_devices, split_batch
from .dist import create_kvstore
from .plot import plt, set_figsize
from .train import batches, fit

__all__ = ['cls_predictor', 'bbox_predictor', 'flatten_pred', 'concat_preds',
           'down_sample_blk', 'base_net', 'get_blk', 'blk_forward', 'TinySSD', 'SSD_SIZES',
           'SSD_RATIOS', 'cls_loss', 'bbox_loss', 'calc_loss', 'cls_eval', 'bbox_eval',
           'SSDLoss', 'focal_loss',
           'train_ssd', 'predict', 'detect', 'display', 'detection_ops', 'evaluate_ssd_map',
           'batches']

#: anchor sizes and ratios of the chapter's five scales
SSD_SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
SSD_RATIOS = [[1, 2, 0.5]] * 5


# ----------------------------------------------------------------------------------------
# Anchor operators: d2lcv.anchors or npx, by the one switch (impl=)
# ----------------------------------------------------------------------------------------

def _npx_ops():
    return types.SimpleNamespace(
        name='npx',
        multibox_prior=lambda data, sizes, ratios: npx.multibox_prior(
            data, sizes=sizes, ratios=ratios),
        multibox_target=lambda anchors, labels, cls_preds, **kw: npx.multibox_target(
            anchors, labels, cls_preds, **kw),
        multibox_detection=lambda cls_probs, offset_preds, anchors, **kw:
            npx.multibox_detection(cls_probs, offset_preds, anchors, **kw))


def _d2lcv_ops():
    from . import anchors as a
    return types.SimpleNamespace(
        name='d2lcv',
        multibox_prior=lambda data, sizes, ratios: a.multibox_prior(
            data, sizes, ratios, impl='d2lcv'),
        multibox_target=lambda anchors, labels, cls_preds, **kw: a.multibox_target(
            anchors, labels, cls_preds, impl='d2lcv', **kw),
        multibox_detection=lambda cls_probs, offset_preds, anchors, **kw:
            a.multibox_detection(cls_probs, offset_preds, anchors, impl='d2lcv', **kw))


def detection_ops(impl=None):
    """The anchor operators: ``multibox_prior``, ``multibox_target``, ``multibox_detection``.

    ``impl``: ``'npx'`` (MXNet's operators), ``'d2lcv'`` (:mod:`d2lcv.anchors`), ``None``
    (the default of :func:`d2lcv.anchors.get_impl`: ``set_impl`` / ``$D2LCV_ANCHORS_IMPL``,
    ``'d2lcv'`` unless changed), or operators this function returned (passed through).
    """
    if isinstance(impl, types.SimpleNamespace):
        return impl
    if impl is None and os.environ.get('D2LCV_DET_BACKEND'):
        raise ValueError('$D2LCV_DET_BACKEND is gone: the anchor operators have one switch, '
                         '$D2LCV_ANCHORS_IMPL (or d2lcv.anchors.set_impl, or impl=)')
    from . import anchors
    return _npx_ops() if anchors.get_impl(impl) == 'npx' else _d2lcv_ops()


# ----------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------

def cls_predictor(num_anchors, num_classes):
    """3x3 conv with ``num_anchors * (num_classes + 1)`` channels; keeps height and width."""
    return nn.Conv2D(num_anchors * (num_classes + 1), kernel_size=3, padding=1)


def bbox_predictor(num_anchors):
    """3x3 conv with ``num_anchors * 4`` channels (one offset 4-tuple per anchor)."""
    return nn.Conv2D(num_anchors * 4, kernel_size=3, padding=1)


def flatten_pred(pred, F=None):
    """``(B, C, H, W)`` -> ``(B, H * W * C)``, channels last so each anchor's values are adjacent.

    ``F`` is the ``hybrid_forward`` namespace (symbol or ndarray); default: ``mxnet.npx``.
    """
    x = F.npx if F is not None else npx
    return x.batch_flatten(pred.transpose(0, 2, 3, 1))


def concat_preds(preds, F=None):
    """Concatenate per-scale predictions ``[(B, C_i, H_i, W_i)]`` into ``(B, sum H_i W_i C_i)``."""
    x = F.np if F is not None else np
    return x.concatenate([flatten_pred(p, F) for p in preds], axis=1)


def down_sample_blk(num_channels):
    """Two (3x3 conv, BN, ReLU) then 2x2 max pooling: halves height and width."""
    blk = nn.HybridSequential()
    for _ in range(2):
        blk.add(nn.Conv2D(num_channels, kernel_size=3, padding=1),
                nn.BatchNorm(in_channels=num_channels),
                nn.Activation('relu'))
    blk.add(nn.MaxPool2D(2))
    return blk


def base_net():
    """Three down-sampling blocks (16, 32, 64 channels): ``(B, 3, 256, 256) -> (B, 64, 32, 32)``."""
    blk = nn.HybridSequential()
    for num_filters in [16, 32, 64]:
        blk.add(down_sample_blk(num_filters))
    return blk


def get_blk(i):
    """Block ``i`` of TinySSD: base net, three 128-channel down-samplers, global max pool."""
    if i == 0:
        blk = base_net()
    elif i == 4:
        blk = nn.GlobalMaxPool2D()
    else:
        blk = down_sample_blk(128)
    return blk


def blk_forward(X, blk, size, ratio, cls_predictor, bbox_predictor, impl=None):
    """One scale: ``(Y, anchors (1, h*w*a, 4), cls_preds (B, a(q+1), h, w), bbox_preds)``."""
    Y = blk(X)
    anchors = detection_ops(impl).multibox_prior(Y, sizes=size, ratios=ratio)
    cls_preds = cls_predictor(Y)
    bbox_preds = bbox_predictor(Y)
    return (Y, anchors, cls_preds, bbox_preds)


class TinySSD(nn.HybridBlock):
    """The chapter's TinySSD, hybridizable.

    ``net(X)`` with ``X (B, 3, H, W)`` returns ``(anchors (1, A, 4), cls_preds (B, A, q+1),
    bbox_preds (B, 4A))``; for 256x256 inputs ``A = (32^2 + 16^2 + 8^2 + 4^2 + 1) * 4 =
    5444``. The convolutional part is ``hybrid_forward``; anchors come from the operators
    ``impl`` chooses (see :func:`detection_ops`) and are cached per feature-map shapes and
    device.
    """

    def __init__(self, num_classes, sizes=None, ratios=None, impl=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.sizes = [list(s) for s in (sizes or SSD_SIZES)]
        self.ratios = [list(r) for r in (ratios or SSD_RATIOS)]
        self.num_anchors = len(self.sizes[0]) + len(self.ratios[0]) - 1
        self.impl = impl
        self._anchor_cache = {}
        with self.name_scope():
            for i in range(5):
                # the assignment statement is self.blk_i = get_blk(i)
                setattr(self, f'blk_{i}', get_blk(i))
                setattr(self, f'cls_{i}', cls_predictor(self.num_anchors, num_classes))
                setattr(self, f'bbox_{i}', bbox_predictor(self.num_anchors))

    def hybrid_forward(self, F, X):
        feats, cls_preds, bbox_preds = [], [], []
        for i in range(5):
            X = getattr(self, f'blk_{i}')(X)
            feats.append(X)
            cls_preds.append(getattr(self, f'cls_{i}')(X))
            bbox_preds.append(getattr(self, f'bbox_{i}')(X))
        # (B, A * (q + 1)) -> (B, A, q + 1); -2 copies the batch dimension
        cls_preds = F.npx.reshape(concat_preds(cls_preds, F), (-2, -1, self.num_classes + 1))
        return (cls_preds, concat_preds(bbox_preds, F)) + tuple(feats)

    def anchors_for(self, feats):
        """Anchors ``(1, A, 4)`` for feature maps ``feats`` (cached by shapes and device)."""
        key = (tuple(f.shape[2:] for f in feats), str(feats[0].ctx),
               getattr(self.impl, 'name', self.impl))
        if key not in self._anchor_cache:
            ops = detection_ops(self.impl)
            self._anchor_cache[key] = np.concatenate(
                [ops.multibox_prior(f, sizes=s, ratios=r)
                 for f, s, r in zip(feats, self.sizes, self.ratios)], axis=1)
        return self._anchor_cache[key]

    def forward(self, X):
        out = super().forward(X)
        if not hasattr(X, 'asnumpy'):  # symbolic composition: return the raw outputs
            return out
        cls_preds, bbox_preds, feats = out[0], out[1], out[2:]
        return self.anchors_for(feats), cls_preds, bbox_preds


# ----------------------------------------------------------------------------------------
# Loss and evaluation
# ----------------------------------------------------------------------------------------

cls_loss = gluon.loss.SoftmaxCrossEntropyLoss()
bbox_loss = gluon.loss.L1Loss()


def calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks):
    """The chapter's loss, ``(B,)``: mean cross-entropy over anchors + mean masked L1 offset.

    Shapes: ``cls_preds (B, A, q+1)``, ``cls_labels (B, A)``, ``bbox_* (B, 4A)``.
    """
    cls = cls_loss(cls_preds, cls_labels)
    bbox = bbox_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks)
    return cls + bbox


def focal_loss(gamma, x):
    """The chapter's plot of the focal loss, ``-(1 - x)^gamma log x``, elementwise."""
    return -(1 - x) ** gamma * np.log(x)


def _hard_negative_weights(ce, cls_labels, ratio):
    """Weights ``(B, A)``: 1 for positives and the ``ratio * #positives`` hardest negatives.

    The hardest negatives are those with the largest per-anchor loss ``ce (B, A)``; each
    image keeps at least ``ratio`` negatives (so images with no object still train the
    background class).
    """
    pos = cls_labels > 0
    neg_loss = np.where(pos, -1e30, ce)
    # rank of every anchor's loss among its image's negatives: 0 = hardest
    order = np.argsort(-neg_loss, axis=1)
    rank = np.argsort(order, axis=1)
    num_keep = np.maximum(pos.sum(axis=1, keepdims=True) * ratio, ratio)
    keep_neg = (rank < num_keep) & (cls_labels == 0)
    return (pos | keep_neg).astype(ce.dtype)


class SSDLoss:
    """The SSD loss with the chapter's exercises as options; ``loss(...)`` returns ``(B,)``.

    Parameters
    ----------
    cls : ``'ce'`` (the chapter's cross-entropy) or ``'focal'`` (``-alpha (1-p)^gamma log p``).
    box : ``'l1'`` (the chapter's) or ``'smooth_l1'`` (``npx.smooth_l1`` with ``sigma``).
    negative_ratio : None, or keep only the ``ratio * #positives`` hardest negative anchors
        per image in the class loss (hard negative mining), averaged over the kept anchors.
    cls_weight, box_weight : weights of the two terms.
    normalize : ``'anchors'`` (the chapter's: means over all anchors / offsets) or
        ``'positives'`` (the SSD paper's: sums divided by the image's number of positive
        anchors, at least 1).
    """

    def __init__(self, cls='ce', box='l1', sigma=1.0, gamma=2.0, alpha=0.25,
                 negative_ratio=None, cls_weight=1.0, box_weight=1.0, normalize='anchors'):
        if cls not in ('ce', 'focal') or box not in ('l1', 'smooth_l1') or \
                normalize not in ('anchors', 'positives'):
            raise ValueError(f'SSDLoss: cls must be ce|focal, box l1|smooth_l1, normalize '
                             f'anchors|positives; got {cls!r}, {box!r}, {normalize!r}')
        self.normalize = normalize
        self.cls, self.box, self.sigma = cls, box, sigma
        self.gamma, self.alpha = gamma, alpha
        self.negative_ratio = negative_ratio
        self.cls_weight, self.box_weight = cls_weight, box_weight

    def __call__(self, cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks):
        logp = npx.log_softmax(cls_preds, axis=-1)                     # (B, A, q+1)
        logp_true = npx.pick(logp, cls_labels, axis=-1)                # (B, A)
        if self.cls == 'focal':
            p = np.exp(logp_true)
            alpha = np.where(cls_labels > 0, self.alpha, 1 - self.alpha)
            per_anchor = -alpha * (1 - p) ** self.gamma * logp_true
        else:
            per_anchor = -logp_true
        if self.negative_ratio:
            w = _hard_negative_weights(per_anchor.detach(), cls_labels, self.negative_ratio)
        else:
            w = np.ones_like(per_anchor)
        diff = (bbox_preds - bbox_labels) * bbox_masks
        if self.box == 'smooth_l1':
            box = npx.smooth_l1(diff, scalar=self.sigma)
        else:
            box = np.abs(diff)
        if self.normalize == 'positives':
            num_pos = np.maximum((cls_labels > 0).sum(axis=1), 1).astype(per_anchor.dtype)
            cls = (per_anchor * w).sum(axis=1) / num_pos
            box = box.sum(axis=1) / num_pos
        else:
            cls = (per_anchor * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1)
            box = box.mean(axis=1)
        return self.cls_weight * cls + self.box_weight * box


def cls_eval(cls_preds, cls_labels):
    """Number of anchors whose arg-max class equals the label (a Python float, as printed)."""
    # because the class predictions are in the last dimension, argmax must name it
    return float((cls_preds.argmax(axis=-1).astype(cls_labels.dtype) == cls_labels).sum())


def bbox_eval(bbox_preds, bbox_labels, bbox_masks):
    """Sum of absolute offset errors over positive anchors (a Python float)."""
    return float((np.abs((bbox_labels - bbox_preds) * bbox_masks)).sum())


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------

def train_ssd(net, train_iter, num_epochs, trainer=None, devices=None, loss=None,
              val_iter=None, lr=0.2, wd=5e-4, *, optimizer='sgd', hybridize=True, impl=None,
              map_every=None, animator=None, save_path=None, progress=True, verbose=True,
              max_batches=None, kvstore='device'):
    """Train an SSD as in section 13.7; return a dict of results.

    Shapes per batch: ``X (B, 3, H, W)``, ``Y (B, m, 5)``. ``net`` is initialised (Xavier)
    on ``devices`` if it has no initialised parameters; ``trainer`` defaults to the
    chapter's SGD (``lr`` 0.2, ``wd`` 5e-4; ``optimizer`` names another Gluon optimizer);
    ``loss`` to the chapter's :func:`calc_loss`
    (any callable with its signature, e.g. :class:`SSDLoss`). Each batch is split across
    ``devices``. Class error and bbox MAE are summed on the device and read five times an
    epoch. With ``val_iter``, the validation mAP@0.5 is computed every ``map_every`` epochs
    (default: after the last) and plotted.

    Prints the chapter's summary: ``class err ..., bbox mae ...`` and ``... examples/sec on
    [...]`` (wall time of the training loop, data reading included, evaluation excluded;
    the chapter's own figure divides by the time of the last batch only). Returns
    ``class_err``, ``bbox_mae``, ``examples_per_sec``, ``seconds``, ``epochs``, ``val_map``
    (the last measured, or None), ``map_history`` ``[(epoch, mAP@0.5)]``, ``loss_history``
    (mean loss per image, per epoch) and the Animator's ``history``. ``max_batches`` caps
    the batches per epoch; ``hybridize`` compiles the net (static memory) first.

    ``kvstore``: the default Trainer's (``'device'``, ``'local'``, ``'dist_sync'``...); a
    ``trainer`` given by the caller keeps its own (named here too, they must agree). Under a
    dist kvstore ``train_iter`` is this worker's shard (``load_data_bananas(...,
    kvstore=kv)``) and ``lr`` is used as given; see :func:`d2lcv.train.fit` for what the
    engine does with several workers.
    """
    devices = resolve_devices(devices)
    ops = detection_ops(impl if impl is not None else getattr(net, 'impl', None))
    if not initialized(net):
        net.initialize(init=init.Xavier(), ctx=devices)
    if hybridize and hasattr(net, 'hybridize'):
        net.hybridize(static_alloc=True, static_shape=True)
    if trainer is None:
        kvstore = create_kvstore(kvstore)
        trainer = gluon.Trainer(net.collect_params(), optimizer,
                                {'learning_rate': lr, 'wd': wd}, kvstore=kvstore)
    elif kvstore == 'device':
        kvstore = None  # the caller's Trainer: read its kvstore from it
    loss = loss or calc_loss

    def step(batch, trainer):
        return _train_step(net, batch[0], batch[1], loss, trainer, devices, ops)

    def metrics(s):
        # class-correct sum, no. of anchors, bbox abs-error sum, no. of offsets, loss sum,
        # no. of examples
        return {'class_err': 1 - _read(s[0]) / _read(s[1]), 'bbox_mae': _read(s[2]) / _read(s[3]),
                'loss': _read(s[4]) / max(s[5], 1)}

    def evaluate(net):
        return {'val_map': evaluate_ssd_map(net, val_iter, devices=devices, impl=ops)['map50']}

    def summary(r):
        lines = [f'class err {r["class_err"]:.2e}, bbox mae {r["bbox_mae"]:.2e}']
        if r.get('val_map') is not None:
            lines.append(f'val mAP@0.5 {r["val_map"]:.3f}')
        return lines

    r = fit(net, train_iter, step, trainer, epochs=num_epochs, devices=devices,
            metrics=metrics, curves={'class_err': 'class error', 'bbox_mae': 'bbox mae'},
            evaluate=evaluate if val_iter is not None else None,
            eval_curves={'val_map': 'val mAP@0.5'}, eval_every=map_every or num_epochs,
            summary=summary, kvstore=kvstore, animator=animator,
            animator_kw={'xlim': [1, num_epochs]}, save_path=save_path,
            max_batches=max_batches, progress=progress, verbose=verbose)
    val = [(e['epoch'], e['val_map']) for e in r['log'] if e.get('val_map') is not None]
    return dict(r, epochs=num_epochs, val_map=val[-1][1] if val else None, map_history=val,
                loss_history=[e['loss'] for e in r['log']])


def _read(value):
    """A metric sum's value on the host: the only device->host reads of ``train_ssd``'s
    loop (a few an epoch; ``tests/test_transfers.py`` counts them)."""
    return float(value)


def _train_step(net, X, Y, loss, trainer, devices, ops):
    """One SGD step on a batch split over ``devices``; returns device-side metric sums
    (class-correct, anchors, bbox abs-error, offsets, loss, examples)."""
    X_shards, Y_shards = split_batch(X, Y, devices)
    outs = []
    with autograd.record():
        for Xs, Ys in zip(X_shards, Y_shards):
            anchors, cls_preds, bbox_preds = net(Xs)
            with autograd.pause():
                # label every anchor with a class and offsets from the ground truth
                bbox_labels, bbox_masks, cls_labels = ops.multibox_target(
                    anchors, Ys, cls_preds.transpose(0, 2, 1))
            l = loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
            outs.append((l, cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks))
    for o in outs:
        o[0].backward()
    trainer.step(X.shape[0])
    home = devices[0]
    sums = [0.0] * 5
    for l, cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks in outs:
        correct = (cls_preds.argmax(axis=-1).astype(cls_labels.dtype) == cls_labels).sum()
        abs_err = np.abs((bbox_labels - bbox_preds) * bbox_masks).sum()
        vals = (correct.as_in_ctx(home), cls_labels.size, abs_err.as_in_ctx(home),
                bbox_labels.size, l.sum().as_in_ctx(home))
        sums = [a + b for a, b in zip(sums, vals)]
    return sums + [X.shape[0]]


# ----------------------------------------------------------------------------------------
# Prediction and evaluation
# ----------------------------------------------------------------------------------------

def detect(net, X, device=None, impl=None, nms_threshold=0.5, **kwargs):
    """All detections for a batch: ``X (B, 3, H, W)`` -> ``(B, A, 6)``.

    Rows ``(class, score, x1, y1, x2, y2)`` with corners in [0, 1]; suppressed and
    background rows have class -1 (the ``multibox_detection`` output).
    """
    if device is None:
        device = list(net.collect_params().values())[0].list_ctx()[0]
    ops = detection_ops(impl if impl is not None else getattr(net, 'impl', None))
    anchors, cls_preds, bbox_preds = net(X.as_in_ctx(device))
    cls_probs = npx.softmax(cls_preds).transpose(0, 2, 1)
    return ops.multibox_detection(cls_probs, bbox_preds, anchors,
                                  nms_threshold=nms_threshold, **kwargs)


def predict(X, net, device=None, impl=None, nms_threshold=0.5):
    """The chapter's ``predict``: the kept detections of the first image, ``(k, 6)``.

    The chapter's ``predict(X)`` reads a global ``net``; here it is the second argument.
    Rows ``(class, score, x1, y1, x2, y2)`` sorted by decreasing score, corners in [0, 1].
    """
    output = detect(net, X, device, impl, nms_threshold)
    idx = onp.nonzero(output[0, :, 0].asnumpy() != -1)[0]
    return output[0, np.array(idx, dtype='int32', ctx=output.ctx)] if len(idx) \
        else output[0, :0]


def display(img, output, threshold, ax=None):
    """Show ``img (H, W, 3)`` with each detection of ``output (k, 6)`` scoring >= ``threshold``."""
    if ax is None:
        set_figsize((5, 5))
        ax = plt.imshow(img.asnumpy() if hasattr(img, 'asnumpy') else img).axes
    else:
        ax.imshow(img.asnumpy() if hasattr(img, 'asnumpy') else img)
    h, w = img.shape[0:2]
    out = host(output, None)
    for row in out:
        score = float(row[1])
        if score < threshold:
            continue
        bbox = [row[2:6] * onp.array((w, h, w, h))]
        show_bboxes(ax, bbox, '%.2f' % score, 'w')
    return ax


def evaluate_ssd_map(net, data_iter, devices=None, impl=None, nms_threshold=0.5,
                     max_batches=None, iou_thresholds=None, interpolation='coco'):
    """Detect on every batch of ``data_iter`` and score with :func:`mean_average_precision`.

    Returns that function's dict (``map50``, ``map``, per-class APs ...). Padded examples
    of a last ``ImageDetIter`` batch are dropped.
    """
    from .detection_metrics import mean_average_precision
    devices = resolve_devices(devices)
    dets, labels = [], []
    if hasattr(data_iter, 'reset'):
        data_iter.reset()
    for i, batch in enumerate(data_iter):
        if max_batches and i >= max_batches:
            break
        if hasattr(batch, 'data'):
            X, Y, pad = batch.data[0], batch.label[0], batch.pad or 0
        else:
            X, Y, pad = batch[0], batch[1], 0
        keep = X.shape[0] - pad
        out = detect(net, X, devices[0], impl, nms_threshold)
        dets.append(out.asnumpy()[:keep])
        labels.append(Y.asnumpy()[:keep])
    m = max(l.shape[1] for l in labels)
    labels = [onp.concatenate([l, -onp.ones((l.shape[0], m - l.shape[1], l.shape[2]),
                                            l.dtype)], axis=1) for l in labels]
    return mean_average_precision(onp.concatenate(dets), onp.concatenate(labels),
                                  iou_thresholds=iou_thresholds, interpolation=interpolation)
