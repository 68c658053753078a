"""13.3: box conversions and drawing."""
import numpy as onp
import pytest
from mxnet import np

import d2lcv
from d2lcv import bbox


def test_corner_center_roundtrip_and_values():
    boxes = onp.array([bbox.DOG_BBOX, bbox.CAT_BBOX, [60, 45, 378, 516]], 'float32')
    centers = bbox.box_corner_to_center(boxes)
    onp.testing.assert_array_equal(centers[2], [219, 280.5, 318, 471])
    onp.testing.assert_array_equal(bbox.box_center_to_corner(centers), boxes)
    # batched (..., 4) and MXNet arrays in, MXNet arrays out
    m = bbox.box_center_to_corner(bbox.box_corner_to_center(np.array(boxes[None])))
    assert isinstance(m, np.ndarray) and m.shape == (1, 3, 4)
    onp.testing.assert_array_equal(m.asnumpy()[0], boxes)


def test_bad_shape():
    with pytest.raises(ValueError, match=r'\(\.\.\., 4\)'):
        bbox.box_corner_to_center(onp.zeros((2, 3)))


def test_bbox_to_rect_and_show_bboxes():
    rect = bbox.bbox_to_rect([60, 45, 378, 516], 'blue')
    assert rect.get_xy() == (60, 45) and rect.get_width() == 318
    assert rect.get_height() == 471 and not rect.get_fill()
    img = bbox.read_image('catdog.jpg')
    assert img.shape == (561, 728, 3) and img.dtype == onp.uint8
    fig = d2lcv.plt.figure()
    ax = fig.gca()
    ax.imshow(img)
    boxes = np.array([bbox.DOG_BBOX, bbox.CAT_BBOX])          # MXNet rows
    bbox.show_bboxes(ax, boxes, ['dog', 'cat'], 'k')
    bbox.show_bboxes(ax, [onp.array([1, 2, 3, 4])], 'one')      # NumPy rows, a single label
    assert len(ax.patches) == 3
    assert [t.get_text() for t in ax.texts] == ['dog', 'cat', 'one']
    assert ax.patches[0].get_edgecolor()[:3] == (0, 0, 0)
    d2lcv.plt.close(fig)
