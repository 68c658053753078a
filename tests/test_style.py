"""Section 13.12: pre/postprocessing, feature extraction, the losses against slow references,
the composite-image model, a short style transfer on tiny images, and the VGG-19 weights."""
import os
import warnings

import mxnet as mx
import numpy as onp
import pytest
from mxnet import gluon, np
from mxnet.gluon import nn

from d2lcv import style
from d2lcv.models import PretrainedWeightsMissing
from netutil import closed_port

IMG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'img')


def _gram_slow(X):
    c = X.shape[1]
    flat = [X[0, i].reshape(-1) for i in range(c)]
    n = flat[0].size
    G = onp.zeros((c, c))
    for i in range(c):
        for j in range(c):
            G[i, j] = sum(float(a) * float(b) for a, b in zip(flat[i], flat[j]))
    return G / (c * n)


def _tv_slow(Y):
    B, C, H, W = Y.shape
    vert = [abs(Y[b, c, i, j] - Y[b, c, i + 1, j]) for b in range(B) for c in range(C)
            for i in range(H - 1) for j in range(W)]
    horiz = [abs(Y[b, c, i, j] - Y[b, c, i, j + 1]) for b in range(B) for c in range(C)
             for i in range(H) for j in range(W - 1)]
    return 0.5 * (sum(vert) / len(vert) + sum(horiz) / len(horiz))


def test_gram_known_matrix():
    X = np.arange(12, dtype='float32').reshape(1, 2, 2, 3)
    # rows x1 = 0..5, x2 = 6..11: x1.x1 = 55, x1.x2 = 145, x2.x2 = 451; divided by c*h*w = 12
    expected = onp.array([[55, 145], [145, 451]]) / 12
    onp.testing.assert_allclose(style.gram(X).asnumpy(), expected, rtol=1e-6)


def test_gram_against_slow_reference():
    X = onp.random.default_rng(0).normal(size=(1, 5, 3, 4)).astype(onp.float32)
    G = style.gram(np.array(X)).asnumpy()
    onp.testing.assert_allclose(G, _gram_slow(X), rtol=1e-5, atol=1e-6)
    onp.testing.assert_allclose(G, G.T, rtol=1e-6)


def test_tv_loss_known_image():
    Y = np.array([[[[0, 1, 3], [2, 2, 2]]]], dtype='float32')
    # vertical |0-2|,|1-2|,|3-2| -> mean 4/3; horizontal 1, 2, 0, 0 -> mean 3/4
    assert float(style.tv_loss(Y)) == pytest.approx(0.5 * (4 / 3 + 3 / 4))
    assert float(style.tv_loss(np.full((1, 3, 4, 5), 7.0))) == 0


def test_tv_loss_against_slow_reference():
    Y = onp.random.default_rng(1).normal(size=(2, 3, 4, 5)).astype(onp.float32)
    assert float(style.tv_loss(np.array(Y))) == pytest.approx(_tv_slow(Y), rel=1e-5)


def test_content_and_style_loss():
    A = np.array([[[[1.0, 2.0]]]])
    B = np.array([[[[3.0, 2.0]]]])
    assert float(style.content_loss(A, B)) == pytest.approx(2.0)  # (4 + 0) / 2
    Y = np.random.normal(size=(1, 4, 3, 3))
    assert float(style.style_loss(Y, style.gram(Y))) == 0
    G = np.zeros((4, 4))
    assert float(style.style_loss(Y, G)) == pytest.approx(
        float(np.square(style.gram(Y)).mean()), rel=1e-6)


def test_compute_loss_is_weighted():
    rng = onp.random.default_rng(2)
    X = np.array(rng.normal(size=(1, 3, 6, 6)))
    c_hat, c = [np.array(rng.normal(size=(1, 4, 3, 3)))], [np.array(rng.normal(size=(1, 4, 3, 3)))]
    s_hat = [np.array(rng.normal(size=(1, 2, 6, 6))), np.array(rng.normal(size=(1, 4, 3, 3)))]
    s_gram = [style.gram(np.array(rng.normal(size=(1, 2, 6, 6)))),
              style.gram(np.array(rng.normal(size=(1, 4, 3, 3))))]
    cl, sl, tl, l = style.compute_loss(X, c_hat, s_hat, c, s_gram, 2.0, 300.0, 7.0)
    assert float(cl[0]) == pytest.approx(2.0 * float(style.content_loss(c_hat[0], c[0])))
    for a, Yh, G in zip(sl, s_hat, s_gram):
        assert float(a) == pytest.approx(300.0 * float(style.style_loss(Yh, G)), rel=1e-5)
    assert float(tl) == pytest.approx(7.0 * float(style.tv_loss(X)), rel=1e-6)
    assert float(l) == pytest.approx(float(cl[0]) + sum(map(float, sl)) + float(tl), rel=1e-5)
    # defaults: the chapter's 1, 1e3, 10
    _, sl2, tl2, _ = style.compute_loss(X, c_hat, s_hat, c, s_gram)
    assert float(sl2[0]) == pytest.approx(1e3 * float(style.style_loss(s_hat[0], s_gram[0])),
                                          rel=1e-5)
    assert float(tl2) == pytest.approx(10 * float(style.tv_loss(X)), rel=1e-6)


def test_preprocess_postprocess_roundtrip():
    img = np.array(onp.random.default_rng(3).integers(0, 256, (6, 8, 3)).astype(onp.uint8))
    X = style.preprocess(img, (8, 6))  # (width, height): same size, no resampling
    assert X.shape == (1, 3, 6, 8) and X.dtype == onp.float32
    expect = (img.asnumpy() / 255 - style.RGB_MEAN) / style.RGB_STD
    onp.testing.assert_allclose(X[0].transpose(1, 2, 0).asnumpy(), expect, rtol=1e-5,
                                atol=1e-5)
    back = style.postprocess(X)
    assert back.shape == (6, 8, 3)
    onp.testing.assert_allclose(back.asnumpy() * 255, img.asnumpy(), atol=1e-3)
    assert style.preprocess(img, (4, 3)).shape == (1, 3, 3, 4)
    # values outside [0, 1] are clipped
    clipped = style.postprocess(X * 100)
    assert float(clipped.max()) == 1 and float(clipped.min()) == 0


def test_extract_features_picks_layers():
    net = nn.Sequential()
    for i in range(6):
        net.add(nn.HybridLambda(lambda F, x: x + 1))
    X = np.zeros((1, 1, 1, 1))
    contents, styles = style.extract_features(X, [3], [0, 2, 5], net)
    assert [float(y) for y in contents] == [4]
    assert [float(y) for y in styles] == [1, 3, 6]


@pytest.fixture(scope='module')
def vgg():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        pretrained, desc = style.load_vgg19(weights='random')
    return style.style_net(pretrained), desc


def test_style_net_layers_and_shapes(vgg):
    net, desc = vgg
    assert 'random' in desc
    assert len(net) == 29
    assert all(isinstance(net[i], nn.Conv2D) for i in style.STYLE_LAYERS + style.CONTENT_LAYERS)
    X = np.random.normal(size=(1, 3, 32, 48))
    contents, styles = style.extract_features(X, style.CONTENT_LAYERS, style.STYLE_LAYERS, net)
    assert [y.shape for y in styles] == [(1, 64, 32, 48), (1, 128, 16, 24), (1, 256, 8, 12),
                                         (1, 512, 4, 6), (1, 512, 2, 3)]
    assert [y.shape for y in contents] == [(1, 512, 4, 6)]
    # He-initialised: the features neither vanish nor explode
    assert all(0.1 < float(y.std()) < 10 for y in styles)


def test_get_inits():
    X = np.random.normal(size=(1, 3, 4, 5))
    styles_Y = [np.random.normal(size=(1, 2, 4, 5))]
    X_var, grams, trainer = style.get_inits(X, mx.cpu(), 0.1, styles_Y)
    onp.testing.assert_array_equal(X_var.asnumpy(), X.asnumpy())
    onp.testing.assert_allclose(grams[0].asnumpy(), style.gram(styles_Y[0]).asnumpy())
    assert trainer.learning_rate == 0.1


def _images():
    content = mx.image.imread(os.path.join(IMG, 'china.jpg'))
    style_img = mx.image.imread(os.path.join(IMG, 'autumn_strokes.jpg'))
    return content, style_img


@pytest.mark.slow
def test_style_loss_falls_tenfold(vgg, tmp_path):
    net, _ = vgg
    content, style_img = _images()
    _, contents_Y = style.get_contents((48, 32), mx.cpu(), content, net)
    content_X, _ = style.get_contents((48, 32), mx.cpu(), content, net)
    _, styles_Y = style.get_styles((48, 32), mx.cpu(), style_img, net)
    history = []
    out = style.train(content_X, contents_Y, styles_Y, mx.cpu(), 0.2, 50, 1000, net,
                      save_path=str(tmp_path / 'anim.png'), history=history)
    assert out.shape == (1, 3, 32, 48)
    assert len(history) == 50 and os.path.exists(tmp_path / 'anim.png')
    first, last = history[0]['style'], history[-1]['style']
    print('style loss', first, '->', last)
    assert last * 10 <= first, (first, last)
    # the composite kept the content: its weighted content loss ends well below that of the
    # style image itself (what dropping the content term would drift towards)
    style_X, _ = style.get_contents((48, 32), mx.cpu(), style_img, net)
    far, _ = style.extract_features(style_X, style.CONTENT_LAYERS, style.STYLE_LAYERS, net)
    far = style.CONTENT_WEIGHT * float(style.content_loss(far[0], contents_Y[0]))
    print('content loss', history[-1]['content'], 'style image', far)
    assert history[-1]["content"] < 0.75 * far, (history[-1]["content"], far)  # 0.36 vs 0.67


def test_lr_decay(vgg):
    net, _ = vgg
    X = np.random.normal(size=(1, 3, 16, 16))
    contents_Y, styles_Y = style.extract_features(X, style.CONTENT_LAYERS,
                                                  style.STYLE_LAYERS, net)
    seen = []
    orig = gluon.Trainer.step

    def spy(self, *a, **k):
        seen.append(self.learning_rate)
        return orig(self, *a, **k)

    gluon.Trainer.step = spy
    try:
        style.train(X, contents_Y, styles_Y, mx.cpu(), 0.5, 5, 2, net, save_path=None,
                    plot_every=100)
    finally:
        gluon.Trainer.step = orig
    assert seen == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.005])


def test_two_stage_style_transfer(vgg, tmp_path):
    net, _ = vgg
    content, style_img = _images()
    small, large, hist = style.style_transfer(
        content, style_img, net, mx.cpu(), image_shape=(24, 16), lr=0.05, num_epochs=3,
        lr_decay_epoch=2, upscale=2, num_epochs2=2, lr_decay_epoch2=1,
        save_prefix=str(tmp_path / 'st'), plot_every=1)
    assert small.shape == (16, 24, 3) and large.shape == (32, 48, 3)
    # each stage starts from the content image and runs a few small steps: both results
    # are much nearer the content image than the style image (mean absolute difference)
    for im in (small, large):
        h, w = im.shape[:2]
        near = [float(np.abs(im - style.postprocess(style.preprocess(x, (w, h)))).mean())
                for x in (content, style_img)]
        print('distance to content, style', near)
        assert near[0] < 0.5 * near[1], near  # measured 0.022 vs 0.362, 0.095 vs 0.345
    assert [len(h) for h in hist] == [3, 2]
    assert os.path.exists(tmp_path / 'st_small.png') and os.path.exists(tmp_path / 'st_large.png')
    only, none, _ = style.style_transfer(content, style_img, net, mx.cpu(), image_shape=(24, 16),
                                         num_epochs=1, lr_decay_epoch=1, upscale=None)
    assert none is None and only.shape == (16, 24, 3)


def test_load_vgg19_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('MXNET_HOME', str(tmp_path / 'mx'))
    monkeypatch.setenv('D2LCV_PRETRAINED_DIR', str(tmp_path / 'pre'))
    monkeypatch.setenv('MXNET_GLUON_REPO', f'http://127.0.0.1:{closed_port()}/')
    with pytest.raises(PretrainedWeightsMissing, match='vgg19-ad2f660d.params'):
        style.load_vgg19(weights='pretrained')
    with pytest.warns(UserWarning, match='randomly initialised VGG-19'):
        net, desc = style.load_vgg19(weights='auto', seed=4)
    assert desc.startswith('random-weight VGG-19')
    net2, _ = style.load_vgg19(weights='random', seed=4)
    for n in (net, net2):
        n.features[0](np.zeros((1, 3, 4, 4)))  # in_channels is inferred at the first call
    onp.testing.assert_array_equal(net.features[0].weight.data().asnumpy(),
                                   net2.features[0].weight.data().asnumpy())
    with pytest.raises(ValueError, match='weights must be'):
        style.load_vgg19(weights='imagenet')


def test_brushstroke_painting():
    a = style.brushstroke_painting(60, 40, seed=1, num_strokes=50)
    b = style.brushstroke_painting(60, 40, seed=1, num_strokes=50)
    assert a.shape == (40, 60, 3) and a.dtype == onp.uint8
    onp.testing.assert_array_equal(a, b)
