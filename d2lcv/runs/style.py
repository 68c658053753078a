"""``d2lcv run style``: section 13.12, neural style transfer in two stages.

Tiny: a 72x48 composite (100 Adam steps), then one 2x larger per side (25 steps). Full: the
chapter's 225x150 (500 steps) then 900x600 (300 steps). VGG-19 weights: ImageNet if
``get_pretrained('vgg19')`` finds them, else a random-weight VGG-19 (said in the report).
"""
from mxnet import image

from .. import style
from ..augment import img_path
from ..plot import plt
from . import pos_float, pos_int, size2, text

NAME = 'style'
SECTION = '13.12'
TITLE = 'Neural style transfer'

OPTIONS = {
    'weights': (text, "VGG-19 weights: 'auto' (ImageNet if found, else random) or a path"),
    'image_shape': (size2, 'stage-1 size W,H (tiny 72,48, full 225,150)'),
    'lr': (pos_float, 'Adam learning rate (tiny 0.05, full 0.01)'),
    'num_epochs': (pos_int, 'stage-1 steps (tiny 100, full 500)'),
    'lr_decay_epoch': (pos_int, 'stage-1 lr x0.1 every this many steps'),
    'upscale': (pos_int, 'stage-2 size factor per side (tiny 2, full 4)'),
    'num_epochs2': (pos_int, 'stage-2 steps (tiny 25, full 300)'),
    'lr_decay_epoch2': (pos_int, 'stage-2 lr x0.1 every this many steps'),
}


def _loss_figure(histories):
    fig, axes = plt.subplots(1, len(histories), figsize=(4 * len(histories), 2.6))
    axes = axes if len(histories) > 1 else [axes]
    for k, (ax, h) in enumerate(zip(axes, histories)):
        for term in ('content', 'style', 'tv'):
            ax.plot([r['epoch'] for r in h], [r[term] for r in h], label=term)
        ax.set_yscale('log')
        ax.set_xlabel('epoch')
        ax.set_title(f'stage {k + 1} (weighted losses)')
        ax.legend()
    fig.tight_layout()
    return fig


def run(ctx):
    rep = ctx.report
    opts = ctx.options
    device = ctx.devices[0]
    content_img = image.imread(img_path('china.jpg'))
    style_img = image.imread(img_path('autumn_strokes.jpg'))
    pretrained, weights = style.load_vgg19(device, weights=opts.get('weights', 'auto'))
    net = style.style_net(pretrained)
    if ctx.tiny:
        kw = dict(image_shape=(72, 48), lr=0.05, num_epochs=100, lr_decay_epoch=80, upscale=2,
                  num_epochs2=25, lr_decay_epoch2=20)
    else:
        kw = dict(image_shape=(225, 150), lr=0.01, num_epochs=500, lr_decay_epoch=200,
                  upscale=4, num_epochs2=300, lr_decay_epoch2=100)
    kw.update({k: opts[k] for k in kw if k in opts})
    small, large, hist = style.style_transfer(content_img, style_img, net, device,
                                              save_prefix=rep.path('13_12_training'), **kw)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3))
    w, h = kw['image_shape']
    shown = [(content_img.asnumpy(), 'content'), (style_img.asnumpy(), 'style'),
             (small.asnumpy(), f'composite {w}x{h}'),
             (large.asnumpy(), f'composite {w * kw["upscale"]}x{h * kw["upscale"]}')]
    for ax, (img, title) in zip(axes, shown):
        ax.imshow(img)
        ax.set_title(title)
        ax.axis('off')
    rep.figure('content_style_composite', fig, 'content, style and composite images')
    rep.figure('losses', _loss_figure(hist), 'weighted content, style and TV losses')
    for k, hs in enumerate(hist):
        if hs:
            rep.metric(f'stage{k + 1}_style_loss_first', hs[0]['style'])
            rep.metric(f'stage{k + 1}_style_loss_last', hs[-1]['style'])
            rep.metric(f'stage{k + 1}_content_loss_last', hs[-1]['content'])
            rep.metric(f'stage{k + 1}_tv_loss_last', hs[-1]['tv'])
    rep.metric('weights', weights)
    rep.note(f'Feature network: {weights}. '
             + ('Random convolutional features still carry colour and local texture '
                'statistics, so colours and textures transfer, but this is not the '
                "chapter's ImageNet result. " if weights.startswith('random') else '')
             + f'Stage 1: {w}x{h}, Adam lr {kw["lr"]}, {kw["num_epochs"]} steps (lr x0.1 '
             f'every {kw["lr_decay_epoch"]}); stage 2: {kw["upscale"]}x larger per side, '
             f'initialised from stage 1, {kw["num_epochs2"]} steps. Content image: '
             "img/china.jpg (scikit-learn sample, CC BY 2.0); style image: "
             'img/autumn_strokes.jpg (drawn by d2lcv.style.brushstroke_painting). Losses '
             'weighted 1 (content), 1e3 (style), 10 (TV).')
