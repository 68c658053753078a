"""``d2lcv run transconv``: section 13.10, transposed convolution.

Checks the chapter's worked examples (basic, padding 1, stride 2, the channel round trip,
the matrix-transposition equivalence) against ``nn.Conv2DTranspose`` and records them, and
upsamples an image by 2 with a bilinear-initialised transposed convolution.
"""
import numpy as onp

__all__ = ['NAME', 'SECTION', 'TITLE', 'run']

NAME = 'transconv'
SECTION = '13.10'
TITLE = 'Transposed convolution'


def _sample_image():
    """``img/catdog.jpg`` when the repository has it, else a synthetic VOC image."""
    from mxnet import image
    try:
        from ..hub import img_path
        return image.imread(img_path('catdog.jpg')), 'img/catdog.jpg'
    except FileNotFoundError:
        from .. import segmentation as seg
        from ..hub import synth_twin
        voc = synth_twin('voc2012')
        feats, _ = seg.read_voc_images(voc, False)
        return feats[0], 'a synthetic VOC twin image (img/catdog.jpg is not in the repository)'


def run(run):
    from mxnet import init, np
    from mxnet.gluon import nn
    from ..fcn import bilinear_kernel
    from ..plot import plt
    from ..train import corr2d
    from ..transconv import kernel2matrix, trans_conv

    rep = run.report
    X = np.array([[0., 1.], [2., 3.]])
    K = np.array([[0., 1.], [2., 3.]])

    def layer(**kw):
        t = nn.Conv2DTranspose(1, kernel_size=2, **kw)
        t.initialize(init.Constant(K.reshape(1, 1, 2, 2)))
        return t(X.reshape(1, 1, 2, 2))[0, 0]

    for key, kw in (('basic', {}), ('padding1', {'padding': 1}), ('stride2', {'stride': 2})):
        ours = trans_conv(X, K, **kw)
        theirs = layer(**{('strides' if k == 'stride' else k): v for k, v in kw.items()})
        rep.metric(f'{key}_output', str(ours.asnumpy().tolist()))
        rep.metric(f'{key}_matches_Conv2DTranspose', bool((ours == theirs).all()))

    Xc = np.random.uniform(size=(1, 10, 16, 16))
    conv = nn.Conv2D(20, kernel_size=5, padding=2, strides=3)
    tconv = nn.Conv2DTranspose(10, kernel_size=5, padding=2, strides=3)
    conv.initialize()
    tconv.initialize()
    rep.metric('tconv_conv_shape_equal', tconv(conv(Xc)).shape == Xc.shape)

    X3 = np.arange(9).reshape(3, 3).astype('float32')
    W = kernel2matrix(K)
    rep.metric('kernel2matrix', str(W.asnumpy().tolist()))
    rep.metric('conv_equals_W_matmul',
               bool((corr2d(X3, K) == np.dot(W, X3.reshape(-1)).reshape(2, 2)).all()))
    rep.metric('trans_conv_equals_WT_matmul',
               bool((trans_conv(X, K) == np.dot(W.T, X.reshape(-1)).reshape(3, 3)).all()))

    img, source = _sample_image()
    conv_trans = nn.Conv2DTranspose(3, kernel_size=4, padding=1, strides=2)
    conv_trans.initialize(init.Constant(bilinear_kernel(3, 3, 4)))
    Xi = np.expand_dims(img.astype('float32').transpose(2, 0, 1), axis=0) / 255
    out_img = conv_trans(Xi)[0].transpose(1, 2, 0)
    rep.metric('input_image_shape', str(img.shape))
    rep.metric('output_image_shape', str(out_img.shape))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].imshow(img.asnumpy())
    axes[0].set_title(f'input {tuple(img.shape)}')
    axes[1].imshow(onp.clip(out_img.asnumpy(), 0, 1))
    axes[1].set_title(f'output {tuple(out_img.shape)}')
    rep.figure('upsample', fig, f'Bilinear 2x upsampling by a transposed convolution of '
               f'{source}: same picture, twice the coordinates.')
