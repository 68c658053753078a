"""Section 13.10, transposed convolution.

``trans_conv(X, K)`` is the chapter's basic 2-D transposed convolution (one channel, no
padding, stride 1), extended with the ``padding`` and ``stride`` that ``nn.Conv2DTranspose``
takes, so the chapter's padding and stride examples can be checked against the layer.
``kernel2matrix(K)`` writes a convolution as a matrix ``W``; ``W.T`` is then the transposed
convolution (section 13.10.3). ``conv_output_shape``/``trans_conv_output_shape`` state the
shape arithmetic, so that ``tconv(conv(X)).shape == X.shape`` can be reasoned about.
"""
from mxnet import np

__all__ = ['trans_conv', 'kernel2matrix', 'conv_output_shape', 'trans_conv_output_shape']


def trans_conv(X, K, padding=0, stride=1):
    """Transposed convolution of ``X (H, W)`` with ``K (h, w)``.

    Every input element broadcasts ``X[i, j] * K`` into the output window starting at
    ``(i * stride, j * stride)``; then ``padding`` rows and columns are removed from each
    side. Output shape ``((H - 1) * stride + h - 2 * padding, (W - 1) * stride + w -
    2 * padding)``. Vectorised over the input: one shifted, strided copy of ``X`` per kernel
    element (the chapter loops over every input element instead).
    """
    h, w = K.shape
    H, W = X.shape
    s = stride
    out_h, out_w = (H - 1) * s + h, (W - 1) * s + w
    Y = np.zeros((out_h, out_w), dtype='float32')
    Xf, Kf = X.astype('float32'), K.astype('float32')
    for a in range(h):
        for b in range(w):
            # output rows a, a + s, ..., a + (H - 1) * s receive K[a, b] * X
            Y[a:a + (H - 1) * s + 1:s, b:b + (W - 1) * s + 1:s] += Kf[a, b] * Xf
    if padding:
        if 2 * padding >= min(out_h, out_w):
            raise ValueError(f'padding {padding} removes the whole {out_h}x{out_w} output')
        Y = Y[padding:out_h - padding, padding:out_w - padding]
    return Y


def conv_output_shape(in_size, kernel_size, padding=0, stride=1):
    """Output side of a convolution: ``floor((n - k + 2p) / s) + 1``."""
    return (in_size - kernel_size + 2 * padding) // stride + 1


def trans_conv_output_shape(in_size, kernel_size, padding=0, stride=1):
    """Output side of a transposed convolution: ``(n - 1) * s + k - 2p``."""
    return (in_size - 1) * stride + kernel_size - 2 * padding


def kernel2matrix(K, input_shape=(3, 3)):
    """The matrix ``W`` of the (valid, stride-1) convolution with ``K (h, w)``.

    ``W`` has shape ``(out_h * out_w, H * W)`` for an input of ``input_shape = (H, W)``:
    row ``r`` holds the kernel placed at output position ``r``, so that
    ``corr2d(X, K) == (W @ X.reshape(-1)).reshape(out_h, out_w)`` and
    ``trans_conv(Y, K) == (W.T @ Y.reshape(-1)).reshape(H, W)``. The default input shape
    gives the chapter's ``(4, 9)`` matrix for a 2x2 kernel.
    """
    import numpy as onp
    Kn = onp.asarray(K.asnumpy() if hasattr(K, 'asnumpy') else K, dtype=onp.float32)
    h, w = Kn.shape
    H, W_ = input_shape
    oh, ow = H - h + 1, W_ - w + 1
    if oh < 1 or ow < 1:
        raise ValueError(f'kernel {Kn.shape} is larger than the input {tuple(input_shape)}')
    # (output position, kernel element) -> flat input index it reads
    out_i, out_j = onp.divmod(onp.arange(oh * ow), ow)
    ka, kb = onp.divmod(onp.arange(h * w), w)
    cols = (out_i[:, None] + ka[None, :]) * W_ + (out_j[:, None] + kb[None, :])
    Wm = onp.zeros((oh * ow, H * W_), dtype=onp.float32)
    Wm[onp.arange(oh * ow)[:, None], cols] = Kn.reshape(-1)[None, :]
    return np.array(Wm)
