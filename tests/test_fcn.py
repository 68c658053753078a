"""Tests for section 13.11 (d2lcv.fcn): bilinear kernel, FCN shapes, the skip FCN against a
slow reference, the ignore-aware loss and accuracy, whole-image prediction, and a short
training run whose loss must fall."""
import math
import os
import random

import mxnet as mx
import numpy as onp
import pytest
from mxnet import autograd, gluon, init, np, npx
from mxnet.gluon import nn

import d2lcv as d2l
from d2lcv import fcn, segmentation as seg
from d2lcv.hub import synth_twin


def _slow_bilinear_kernel(cin, cout, k):
    """The chapter's formula, element by element."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    w = onp.zeros((cin, cout, k, k))
    for c in range(min(cin, cout)):
        for i in range(k):
            for j in range(k):
                w[c, c, i, j] = (1 - abs(i - center) / factor) * (1 - abs(j - center) / factor)
    return w


def test_bilinear_kernel_chapter_case_and_reference():
    w = fcn.bilinear_kernel(3, 3, 4)
    assert w.shape == (3, 3, 4, 4) and w.dtype == onp.float32
    one_d = onp.array([0.25, 0.75, 0.75, 0.25])
    for c in range(3):
        onp.testing.assert_allclose(w[c, c].asnumpy(), onp.outer(one_d, one_d))
    assert (w[0, 1] == 0).all() and (w[2, 0] == 0).all()
    for args in [(3, 3, 4), (21, 21, 64), (2, 2, 3), (4, 2, 5), (1, 3, 1)]:
        onp.testing.assert_allclose(fcn.bilinear_kernel(*args).asnumpy(),
                                    _slow_bilinear_kernel(*args), rtol=1e-6)


def _slow_bilinear_upsample2(img):
    """Half-pixel bilinear upsampling by 2 of ``img (H, W, C)``, loop over output pixels."""
    H, W, C = img.shape
    out = onp.zeros((2 * H, 2 * W, C))
    for y in range(2 * H):
        for x in range(2 * W):
            sy, sx = (y + 0.5) / 2 - 0.5, (x + 0.5) / 2 - 0.5
            y0, x0 = int(onp.floor(sy)), int(onp.floor(sx))
            dy, dx = sy - y0, sx - x0
            acc = 0.0
            for yy, wy in ((y0, 1 - dy), (y0 + 1, dy)):
                for xx, wx in ((x0, 1 - dx), (x0 + 1, dx)):
                    yy_c, xx_c = min(max(yy, 0), H - 1), min(max(xx, 0), W - 1)
                    acc = acc + wy * wx * img[yy_c, xx_c]
            out[y, x] = acc
    return out


def test_upsampling_an_image_by_two():
    """The chapter's 2x upsampling of an image with Conv2DTranspose(3, 4, padding 1,
    stride 2) initialised by bilinear_kernel(3, 3, 4)."""
    rng = onp.random.default_rng(0)
    img = rng.integers(0, 256, (9, 13, 3)).astype(onp.uint8)
    conv_trans = nn.Conv2DTranspose(3, kernel_size=4, padding=1, strides=2)
    conv_trans.initialize(init.Constant(fcn.bilinear_kernel(3, 3, 4)))
    X = np.expand_dims(np.array(img).astype('float32').transpose(2, 0, 1), axis=0) / 255
    out_img = conv_trans(X)[0].transpose(1, 2, 0).asnumpy()
    assert out_img.shape == (18, 26, 3)
    expect = _slow_bilinear_upsample2(img / 255)
    # the layer zero-pads where interpolation clamps: compare away from the 1-pixel rim
    onp.testing.assert_allclose(out_img[1:-1, 1:-1], expect[1:-1, 1:-1], atol=1e-5)


@pytest.fixture(scope='module')
def small_fcn():
    mx.random.seed(0)
    return fcn.fcn_net(num_classes=21, pretrained=False, devices=[mx.cpu()])


def test_fcn_shapes_and_structure(small_fcn):
    net = small_fcn
    zoo = gluon.model_zoo.vision.resnet18_v2(pretrained=False)
    assert [type(b).__name__ for b in zoo.features[-2:]] == ['GlobalAvgPool2D', 'Flatten']
    assert len(net) == len(zoo.features) - 2 + 2
    X = np.random.uniform(size=(1, 3, 320, 480))
    assert net[:-2](X).shape == (1, 512, 10, 15)
    assert net(X).shape == (1, 21, 320, 480)
    assert isinstance(net[-1], nn.Conv2DTranspose) and isinstance(net[-2], nn.Conv2D)
    onp.testing.assert_array_equal(net[-1].weight.data().asnumpy(),
                                   fcn.bilinear_kernel(21, 21, 64).asnumpy())
    assert net.pretrained is False


def test_fcn_pretrained_goes_through_get_pretrained(monkeypatch):
    """pretrained=True takes the backbone from d2lcv.models.get_pretrained, and its
    PretrainedWeightsMissing propagates (no silent random init)."""
    import d2lcv.models as models
    calls = []

    def fake(name, ctx=None, root=None):
        calls.append((name, ctx, root))
        net = gluon.model_zoo.vision.resnet18_v2(pretrained=False)
        net.initialize(init.Constant(0.5), ctx=ctx)
        return net

    monkeypatch.setattr(models, 'get_pretrained', fake, raising=False)
    net = fcn.fcn_net(pretrained=True, devices=[mx.cpu()], root='/somewhere')
    assert calls == [('resnet18_v2', [mx.cpu()], '/somewhere')]
    assert net(np.zeros((1, 3, 64, 64))).shape == (1, 21, 64, 64)
    conv0 = [b for b in net[:-2] if isinstance(b, nn.Conv2D)][0]
    assert (conv0.weight.data() == 0.5).all()

    class Missing(FileNotFoundError):
        pass

    def missing(name, ctx=None, root=None):
        raise Missing(f'no pretrained weights for {name!r}: put the file at X')

    monkeypatch.setattr(models, 'get_pretrained', missing, raising=False)
    with pytest.raises(FileNotFoundError, match='resnet18_v2'):
        fcn.fcn_net(pretrained=True, devices=[mx.cpu()])



def _slow_conv1x1(x, w, b):
    """``(B, I, h, w)`` through a 1x1 convolution ``w (O, I, 1, 1)``, ``b (O,)``."""
    return onp.einsum('bihw,oi->bohw', x, w[:, :, 0, 0]) + b[None, :, None, None]


def _slow_deconv(x, w, b, stride, pad):
    """Transposed convolution by its definition: every input pixel scatters ``w``."""
    B, I, h, wd = x.shape
    _, O, k, _ = w.shape
    full = onp.zeros((B, O, (h - 1) * stride + k, (wd - 1) * stride + k))
    for y in range(h):
        for xx in range(wd):
            full[:, :, y * stride:y * stride + k, xx * stride:xx * stride + k] += \
                onp.einsum('bi,iokl->bokl', x[:, :, y, xx], w)
    H, W = (h - 1) * stride + k - 2 * pad, (wd - 1) * stride + k - 2 * pad
    return full[:, :, pad:pad + H, pad:pad + W] + b[None, :, None, None]


@pytest.mark.parametrize('stride,skips', [(16, (8,)), (32, (16, 8))])
def test_skip_fcn_against_slow_reference(stride, skips):
    """FCN-16s/8s wiring: out = up(up2(score_16(f16)) + score_8(f8)), checked against
    the backbone's stage outputs and a 1x1 convolution / transposed convolution written by
    their definitions, with every head weight random (the skip scores start at 0)."""
    from d2lcv.efficientnet import STAGE_CHANNELS, efficientnet_lite0, initialize_random
    from d2lcv.efficientnet import stage_outputs
    mx.random.seed(1)
    eff = initialize_random(efficientnet_lite0(), ctx=[mx.cpu()])
    net = fcn.SkipFCN(eff.features, 3, stride, skips, devices=[mx.cpu()])
    strides = [stride, *skips]
    assert net.strides == strides and len(net.scores) == len(strides)
    for conv in net.scores[1:]:  # training starts from the plain coarse FCN
        assert (conv.weight.data() == 0).all()
    for up in net.ups:
        onp.testing.assert_array_equal(up.weight.data().asnumpy(),
                                       fcn.bilinear_kernel(3, 3, 4).asnumpy())
    rng = onp.random.default_rng(0)
    for blk in [*net.scores, *net.ups, net.up]:
        for prm in (blk.weight, blk.bias):
            prm.set_data(np.array(rng.normal(0, 0.3, prm.shape).astype(onp.float32)))
    X = np.array(rng.normal(size=(2, 3, 2 * stride, 3 * stride)).astype(onp.float32))
    out = net(X).asnumpy()
    assert out.shape == (2, 3, 2 * stride, 3 * stride)
    feats = [f.asnumpy().astype(onp.float64) for f in stage_outputs(eff, X, strides)]
    for f, s in zip(feats, strides):
        assert f.shape == (2, STAGE_CHANNELS[s], 2 * stride // s, 3 * stride // s)
    par = [(blk.weight.data().asnumpy().astype(onp.float64), blk.bias.data().asnumpy())
           for blk in [*net.scores, *net.ups, net.up]]
    n = len(strides)
    y = _slow_conv1x1(feats[0], *par[0])
    for i in range(1, n):
        y = _slow_deconv(y, *par[n + i - 1], 2, 1) + _slow_conv1x1(feats[i], *par[i])
    expect = _slow_deconv(y, *par[-1], strides[-1], strides[-1] // 2)
    onp.testing.assert_allclose(out, expect, rtol=1e-4, atol=1e-4)


def test_skip_fcn_net_options_and_gradient():
    mx.random.seed(0)
    net = fcn.fcn_net(21, pretrained=False, devices=[mx.cpu()], backbone='efficientnet_lite0',
                      stride=16, skips=(8,))
    assert isinstance(net, fcn.SkipFCN) and net.pretrained is False
    assert 'skips (8,)' in net.backbone_note
    X = np.random.uniform(size=(2, 3, 64, 96))
    Y = np.array(onp.random.default_rng(0).integers(0, 21, (2, 64, 96)).astype(onp.float32))
    with autograd.record():
        loss = fcn.SegmentationLoss()(net(X), Y).mean()
    loss.backward()
    # the zero-initialised skip score still receives a gradient (it is not a dead branch)
    assert float(np.abs(net.scores[1].weight.grad()).sum()) > 0
    # the default FCN is unchanged: a HybridSequential ending in the chapter's two layers
    plain = fcn.fcn_net(21, pretrained=False, devices=[mx.cpu()],
                        backbone='efficientnet_lite0', stride=16)
    assert isinstance(plain, nn.HybridSequential) and isinstance(plain[-1], nn.Conv2DTranspose)
    with pytest.raises(ValueError, match='half'):
        fcn.fcn_net(21, pretrained=False, backbone='efficientnet_lite0', stride=16, skips=(4,))
    with pytest.raises(ValueError, match='efficientnet_lite0'):
        fcn.fcn_net(21, pretrained=False, backbone='resnet18_v2', skips=(16,))


def _slow_masked_ce(pred, label, ignore=255):
    pred, label = pred.asnumpy().astype(float), label.asnumpy()
    out = []
    for b in range(pred.shape[0]):
        total, n = 0.0, 0
        for i in range(label.shape[1]):
            for j in range(label.shape[2]):
                t = int(label[b, i, j])
                if t == ignore:
                    continue
                s = pred[b, :, i, j]
                total += -(s[t] - s.max() - onp.log(onp.exp(s - s.max()).sum()))
                n += 1
        out.append(total / max(n, 1))
    return onp.array(out)


def test_segmentation_loss():
    rng = onp.random.default_rng(0)
    pred = np.array(rng.normal(size=(3, 5, 4, 6)), dtype='float32')
    label = rng.integers(0, 5, (3, 4, 6)).astype(onp.float32)
    plain = gluon.loss.SoftmaxCrossEntropyLoss(axis=1)
    loss = fcn.SegmentationLoss()
    assert loss.ignore_label == 255
    # without void pixels it is the chapter's loss
    onp.testing.assert_allclose(loss(pred, np.array(label)).asnumpy(),
                                plain(pred, np.array(label)).asnumpy(), rtol=1e-5)
    label[rng.random(label.shape) < 0.3] = 255
    label[2] = 255  # an example with no valid pixel
    got = loss(pred, np.array(label)).asnumpy()
    onp.testing.assert_allclose(got, _slow_masked_ce(pred, np.array(label)), rtol=1e-5)
    assert got[2] == 0
    # void pixels get no gradient
    pred.attach_grad()
    with autograd.record():
        l = loss(pred, np.array(label))
    l.backward()
    g = pred.grad.asnumpy()
    assert (g.transpose(0, 2, 3, 1)[label == 255] == 0).all()
    assert onp.abs(g.transpose(0, 2, 3, 1)[label != 255]).sum() > 0


class _FixedScores(nn.Block):
    """Scores that make the prediction the constant class ``cls``."""

    def __init__(self, num_classes, cls):
        super().__init__()
        self.num_classes, self.cls = num_classes, cls
        self.dummy = nn.Dense(1)

    def forward(self, X):
        onehot = npx.one_hot(np.full(X.shape[:1] + X.shape[2:], self.cls), self.num_classes)
        return onehot.transpose(0, 3, 1, 2)


def test_accuracy_ignores_void():
    net = _FixedScores(4, 1)
    net.initialize()
    net.dummy(np.zeros((1, 1)))
    X = np.zeros((2, 3, 2, 3))
    Y = np.array([[[1, 1, 255], [0, 255, 255]], [[1, 2, 3], [1, 1, 255]]], dtype='float32')
    data = [(X, Y)]
    # valid labels: 1,1,0 and 1,2,3,1,1 -> 5 right of 8
    assert d2l.evaluate_accuracy_gpus(net, data, ignore_label=255) == pytest.approx(5 / 8)
    assert d2l.evaluate_accuracy_gpus(net, data) == pytest.approx(5 / 12)
    from d2lcv.train import _correct, _num_labels
    assert float(_correct(net(X), Y, 255)) == 5 and float(_num_labels(Y, 255)) == 8


def test_tile_starts_cover():
    for size in range(1, 300, 7):
        for tile in (32, 64, 96):
            starts = fcn.tile_starts(size, tile)
            covered = onp.zeros(size, bool)
            for s in starts:
                assert 0 <= s and (s + tile <= size or size <= tile)
                covered[s:s + tile] = True
            assert covered.all()
            assert len(starts) == max(1, -(-size // tile))  # the fewest tiles
    assert fcn.tile_starts(96, 96) == [0] and fcn.tile_starts(100, 96) == [0, 4]


def _identity_net():
    """1x1 convolution with identity weights: its 'scores' are the normalised pixels."""
    net = nn.Conv2D(3, kernel_size=1, use_bias=False)
    net.initialize(init.Constant(np.eye(3).reshape(3, 3, 1, 1)))
    return net


@pytest.mark.parametrize('hw', [(70, 100), (33, 200), (20, 50), (64, 96), (1, 1), (129, 37)])
def test_predict_whole_exact_size(hw):
    """Any size gives a label map of exactly that size; with a pointwise net the tiling,
    overlap averaging and padding must reproduce the per-pixel answer exactly."""
    rng = onp.random.default_rng(hw[0] * 1000 + hw[1])
    img = rng.integers(0, 256, hw + (3,)).astype(onp.uint8)
    labels, scores = fcn.predict_whole(img, _identity_net(), tile=(64, 96),
                                       return_scores=True)
    assert labels.shape == hw and scores.shape == (3,) + hw
    norm = seg.normalize_image(img)
    onp.testing.assert_allclose(scores, norm.transpose(2, 0, 1), atol=1e-5)
    onp.testing.assert_array_equal(labels, norm.argmax(axis=2))


def test_predict_whole_with_fcn_matches_predict(small_fcn):
    rng = onp.random.default_rng(5)
    img = rng.integers(0, 256, (64, 96, 3)).astype(onp.uint8)
    one_tile = fcn.predict_whole(img, small_fcn, tile=(64, 96))
    onp.testing.assert_array_equal(one_tile, fcn.predict(np.array(img), small_fcn).asnumpy())
    odd = fcn.predict_whole(rng.integers(0, 256, (75, 101, 3)).astype(onp.uint8), small_fcn,
                            tile=(64, 96))
    assert odd.shape == (75, 101)
    with pytest.raises(ValueError, match='empty'):
        fcn.predict_whole(onp.zeros((0, 5, 3), onp.uint8), small_fcn)


def test_label2image():
    pred = np.array([[0, 1, 20], [255, 7, 0]])
    img = fcn.label2image(pred).asnumpy()
    assert img.dtype == onp.uint8 and img.shape == (2, 3, 3)
    cm = d2l.VOC_COLORMAP
    assert img[0].tolist() == [cm[0], cm[1], cm[20]]
    assert img[1].tolist() == [seg.VOID_COLOR, cm[7], cm[0]]


@pytest.fixture(scope='module')
def tiny_voc(tmp_path_factory):
    root = tmp_path_factory.mktemp('fcnvoc') / 'voc2012'
    return synth_twin('voc2012', root=str(root), num_train=8, num_val=6, scale=0.25)


def test_evaluate_voc_against_slow(tiny_voc):
    net = _identity_net()
    res = fcn.evaluate_voc(net, tiny_voc, is_train=False, tile=(64, 96))
    right = total = 0
    for name in seg.voc_split_names(tiny_voc, False):
        img = onp.asarray(__import__('PIL.Image').Image.open(
            os.path.join(tiny_voc, 'JPEGImages', name + '.jpg')).convert('RGB'))
        lbl = seg.read_voc_label(os.path.join(tiny_voc, 'SegmentationClass', name + '.png'))
        pred = seg.normalize_image(img).argmax(axis=2)
        right += ((pred == lbl) & (lbl != 255)).sum()
        total += (lbl != 255).sum()
    assert res['num_images'] == 6
    assert res['pixel_acc'] == pytest.approx(right / total)
    assert res['confusion'].sum() == total


class _SameCrops:
    """A loader whose every pass draws the same random crops (Python's ``random`` reseeded)."""

    def __init__(self, loader, seed=7):
        self.loader, self.seed = loader, seed

    def __iter__(self):
        random.seed(self.seed)
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)


@pytest.mark.slow
def test_fcn_training_loss_falls(tiny_voc, tmp_path):
    """A few epochs on 64x96 crops (random-init backbone, two CPU 'devices'): the loss on a
    fixed batch falls, and train_ch13's accuracy leaves the void pixels out."""
    mx.random.seed(1)
    random.seed(1)
    onp.random.seed(1)  # the DataLoader shuffles with NumPy's global generator
    devices = [mx.cpu(0), mx.cpu(1)]
    train_iter, test_iter = d2l.load_data_voc(4, (64, 96), voc_dir=tiny_voc, num_workers=0,
                                              verbose=False)
    net = fcn.fcn_net(pretrained=False, devices=devices)
    X, Y = next(iter(train_iter))
    loss = fcn.SegmentationLoss()

    def batch_loss():  # batch statistics in BatchNorm, as during training
        with autograd.train_mode():
            return float(loss(net(X.as_in_ctx(devices[0])), Y.as_in_ctx(devices[0])).mean())

    before = batch_loss()
    test_iter = _SameCrops(test_iter)  # the evaluation's random crops, replayable below
    res = fcn.train_fcn(net, train_iter, test_iter, num_epochs=4, lr=1e-3, wd=1e-4,
                        devices=devices, optimizer='adam', verbose=False,
                        save_path=str(tmp_path / 'train.png'))
    after = batch_loss()
    # below the loss of a uniform guess over the 21 classes, and well below the start
    # (on the photo VOC twin 4 epochs take it from about 3.7 to 2.3)
    assert after < math.log(21) and after < 0.75 * before, (before, after)
    assert res['train_loss'] < before
    assert res['epochs_run'] == 4
    # the reported test accuracy is the trained net's pixel accuracy on test_iter (the same
    # crops) with the void pixels left out: recount it here with NumPy
    right = total = void = 0
    for X, Y in test_iter:  # split over the devices as in training: the same float sums
        for Xs, Ys in zip(*d2l.split_batch(X, Y, devices)):
            pred = net(Xs).argmax(axis=1).asnumpy()
            y = Ys.asnumpy()
            valid = y != 255
            right += int((pred[valid] == y[valid]).sum())
            total += int(valid.sum())
            void += int((~valid).sum())
    assert total > 0 and void > 0  # the twin has void pixels to skip
    assert res['test_acc'] == pytest.approx(right / total, abs=1e-9), (res['test_acc'],
                                                                        right / total)
