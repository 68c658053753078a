"""Tests for section 13.10 (d2lcv.transconv): the chapter's printed outputs, a slow loop
reference, and MXNet's Conv2DTranspose as a second oracle."""
import numpy as onp
import pytest
from mxnet import init, np
from mxnet.gluon import nn

import d2lcv as d2l
from d2lcv.transconv import conv_output_shape, trans_conv_output_shape


def _slow_trans_conv(X, K, padding=0, stride=1):
    """The chapter's loop over input elements, with stride and padding."""
    X, K = onp.asarray(X, float), onp.asarray(K, float)
    h, w = K.shape
    Y = onp.zeros(((X.shape[0] - 1) * stride + h, (X.shape[1] - 1) * stride + w))
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            Y[i * stride:i * stride + h, j * stride:j * stride + w] += X[i, j] * K
    return Y[padding:Y.shape[0] - padding, padding:Y.shape[1] - padding]


def _layer(K, **kwargs):
    tconv = nn.Conv2DTranspose(1, kernel_size=K.shape, **kwargs)
    tconv.initialize(init.Constant(K.reshape(1, 1, *K.shape)))
    return tconv


X = np.array([[0., 1.], [2., 3.]])
K = np.array([[0., 1.], [2., 3.]])


def test_chapter_basic_example():
    expect = [[0., 0., 1.], [0., 4., 6.], [4., 12., 9.]]
    onp.testing.assert_array_equal(d2l.transconv.trans_conv(X, K).asnumpy(), expect)
    onp.testing.assert_array_equal(
        _layer(K)(X.reshape(1, 1, 2, 2)).asnumpy(), onp.array(expect)[None, None])


def test_chapter_padding_example():
    assert d2l.transconv.trans_conv(X, K, padding=1).asnumpy().tolist() == [[4.]]
    assert _layer(K, padding=1)(X.reshape(1, 1, 2, 2)).asnumpy().tolist() == [[[[4.]]]]


def test_chapter_stride_example():
    expect = [[0., 0., 0., 1.], [0., 0., 2., 3.], [0., 2., 0., 3.], [4., 6., 6., 9.]]
    onp.testing.assert_array_equal(d2l.transconv.trans_conv(X, K, stride=2).asnumpy(), expect)
    onp.testing.assert_array_equal(_layer(K, strides=2)(X.reshape(1, 1, 2, 2)).asnumpy(),
                                   onp.array(expect)[None, None])


@pytest.mark.parametrize('shape,kshape,padding,stride',
                         [((5, 7), (3, 2), 0, 1), ((4, 4), (3, 3), 1, 2), ((1, 1), (4, 4), 1, 3),
                          ((6, 3), (5, 5), 2, 3), ((3, 8), (1, 1), 0, 2)])
def test_trans_conv_random_against_slow_and_layer(shape, kshape, padding, stride):
    rng = onp.random.default_rng(sum(shape) + stride)
    Xr, Kr = rng.normal(size=shape), rng.normal(size=kshape)
    got = d2l.transconv.trans_conv(np.array(Xr), np.array(Kr), padding=padding,
                                   stride=stride).asnumpy()
    onp.testing.assert_allclose(got, _slow_trans_conv(Xr, Kr, padding, stride), atol=1e-5)
    layer = _layer(np.array(Kr, dtype='float32'), padding=padding, strides=stride)
    onp.testing.assert_allclose(
        layer(np.array(Xr[None, None], dtype='float32')).asnumpy()[0, 0], got, atol=1e-5)
    assert got.shape == tuple(trans_conv_output_shape(n, k, padding, stride)
                              for n, k in zip(shape, kshape))


def test_trans_conv_padding_too_large():
    with pytest.raises(ValueError, match='padding'):
        d2l.transconv.trans_conv(X, K, padding=2)


def test_channels_shape_roundtrip():
    """The chapter's check: tconv(conv(X)).shape == X.shape (kernel 5, padding 2, stride 3)."""
    Xc = np.random.uniform(size=(1, 10, 16, 16))
    conv = nn.Conv2D(20, kernel_size=5, padding=2, strides=3)
    tconv = nn.Conv2DTranspose(10, kernel_size=5, padding=2, strides=3)
    conv.initialize()
    tconv.initialize()
    assert conv(Xc).shape == (1, 20, 6, 6)
    assert tconv(conv(Xc)).shape == Xc.shape
    assert conv_output_shape(16, 5, 2, 3) == 6 and trans_conv_output_shape(6, 5, 2, 3) == 16


def test_kernel2matrix_chapter_example():
    X3 = np.arange(9).reshape(3, 3)
    Y = d2l.corr2d(X3, K)
    assert Y.asnumpy().tolist() == [[19., 25.], [37., 43.]]
    W = d2l.transconv.kernel2matrix(K)
    expect = [[0., 1., 0., 2., 3., 0., 0., 0., 0.],
              [0., 0., 1., 0., 2., 3., 0., 0., 0.],
              [0., 0., 0., 0., 1., 0., 2., 3., 0.],
              [0., 0., 0., 0., 0., 1., 0., 2., 3.]]
    onp.testing.assert_array_equal(W.asnumpy(), expect)
    assert (Y == np.dot(W, X3.reshape(-1).astype('float32')).reshape(2, 2)).all()
    Yt = d2l.transconv.trans_conv(X, K)
    assert (Yt == np.dot(W.T, X.reshape(-1)).reshape(3, 3)).all()


def test_kernel2matrix_general_transposition():
    """For any sizes: W @ x is the convolution, W.T @ y the transposed convolution."""
    rng = onp.random.default_rng(0)
    for (H, Wd), (h, w) in [((5, 6), (2, 3)), ((4, 4), (4, 4)), ((3, 7), (1, 2))]:
        Kr = rng.normal(size=(h, w)).astype(onp.float32)
        Xr = rng.normal(size=(H, Wd)).astype(onp.float32)
        Wm = d2l.transconv.kernel2matrix(np.array(Kr), (H, Wd)).asnumpy()
        assert Wm.shape == ((H - h + 1) * (Wd - w + 1), H * Wd)
        conv = d2l.corr2d(np.array(Xr), np.array(Kr)).asnumpy()
        onp.testing.assert_allclose(Wm @ Xr.ravel(), conv.ravel(), atol=1e-5)
        Yr = rng.normal(size=conv.shape).astype(onp.float32)
        onp.testing.assert_allclose(
            (Wm.T @ Yr.ravel()).reshape(H, Wd),
            d2l.transconv.trans_conv(np.array(Yr), np.array(Kr)).asnumpy(), atol=1e-5)
    with pytest.raises(ValueError, match='larger'):
        d2l.transconv.kernel2matrix(K, (1, 3))
