"""``d2lcv run bbox``: section 13.3, the two objects of the cat-and-dog image and their boxes."""
from .. import bbox
from ..plot import plt, set_figsize

__all__ = ['NAME', 'SECTION', 'TITLE', 'run']

NAME = 'bbox'
SECTION = '13.3'
TITLE = 'Object detection and bounding boxes'


def run(run):
    rep = run.report
    img = bbox.read_image('catdog.jpg')
    set_figsize()
    fig = plt.figure()
    ax = fig.gca()
    ax.imshow(img)
    ax.add_patch(bbox.bbox_to_rect(bbox.DOG_BBOX, 'blue'))
    ax.add_patch(bbox.bbox_to_rect(bbox.CAT_BBOX, 'red'))
    rep.figure('bboxes', fig, 'img/catdog.jpg with its two boxes (left: the astronaut standing '
               'in for the dog, right: the cat)')
    centers = bbox.box_corner_to_center([bbox.DOG_BBOX, bbox.CAT_BBOX])
    roundtrip = bbox.box_center_to_corner(centers)
    rep.metric('image_height', int(img.shape[0]))
    rep.metric('image_width', int(img.shape[1]))
    rep.metric('corner_center_roundtrip_max_err',
               float(abs(roundtrip - [bbox.DOG_BBOX, bbox.CAT_BBOX]).max()))
    rep.note('Boxes are (x1, y1, x2, y2) in pixels; the image is a composite of two '
             'scikit-image photos (see img/README.md), not the chapter\'s photo.')
