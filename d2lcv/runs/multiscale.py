"""``d2lcv run multiscale``: section 13.5, anchors of 4x4, 2x2 and 1x1 feature maps."""
from .. import anchors as A

__all__ = ['NAME', 'SECTION', 'TITLE', 'run']

NAME = 'multiscale'
SECTION = '13.5'
TITLE = 'Multiscale object detection'


def run(run):
    rep = run.report
    for fmap, s in [(4, 0.15), (2, 0.4), (1, 0.8)]:
        ax = A.display_anchors(fmap_w=fmap, fmap_h=fmap, s=[s])
        rep.figure(f'anchors_{fmap}x{fmap}', ax.figure,
                   f'anchors of a {fmap}x{fmap} feature map, size {s}, ratios 1, 2, 0.5')
        rep.metric(f'num_anchors_{fmap}x{fmap}', len(ax.patches))
    rep.note('Anchors centred on every unit of the feature map, drawn on img/catdog.jpg.')
