"""Writes the notebooks of 13.3, 13.4, 13.5 and 13.8 (run from notebooks/): the chapter's
cells with ``d2l`` = ``d2lcv``, without outputs."""
import nbformat
from nbformat.v4 import new_notebook, new_code_cell, new_markdown_cell

def nb(name, cells):
    n = new_notebook()
    n.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    n.cells = [new_markdown_cell(c[3:]) if c.startswith('md:') else new_code_cell(c.strip('\n')) for c in cells]
    nbformat.write(n, name)

nb('13_03_bbox.ipynb', [
"md:# 13.3 Object Detection and Bounding Boxes\n\nThe chapter's code with `d2l` = `d2lcv`. `../img/catdog.jpg` is a stand-in composite (see `img/README.md`): the astronaut on the left plays the chapter's dog, so the boxes are this image's own.",
"""
%matplotlib inline
import d2lcv as d2l
from mxnet import image, np, npx

npx.set_np()
""",
"""
d2l.set_figsize()
img = image.imread('../img/catdog.jpg').asnumpy()
d2l.plt.imshow(img);
""",
"md:## 13.3.1 Bounding Box",
"""
# bbox is the abbreviation for bounding box
dog_bbox, cat_bbox = d2l.DOG_BBOX, d2l.CAT_BBOX
dog_bbox, cat_bbox
""",
"""
boxes = np.array((dog_bbox, cat_bbox))
d2l.box_center_to_corner(d2l.box_corner_to_center(boxes)) == boxes
""",
"""
fig = d2l.plt.imshow(img)
fig.axes.add_patch(d2l.bbox_to_rect(dog_bbox, 'blue'))
fig.axes.add_patch(d2l.bbox_to_rect(cat_bbox, 'red'));
""",
])

nb('13_04_anchors.ipynb', [
"md:# 13.4 Anchor Boxes\n\nThe chapter's code with `d2l` = `d2lcv`. Every `npx.multibox_*` call is shown next to `d2l.multibox_*` (d2lcv's readable implementation, `impl='d2lcv'`, the default; `impl='npx'` calls the operator): they give the same numbers.",
"""
%matplotlib inline
import d2lcv as d2l
from mxnet import gluon, image, np, npx

np.set_printoptions(2)
npx.set_np()
""",
"md:## 13.4.1 Generating Multiple Anchor Boxes",
"""
img = image.imread('../img/catdog.jpg').asnumpy()
h, w = img.shape[0:2]

print(h, w)
X = np.random.uniform(size=(1, 3, h, w))  # Construct input data
Y = d2l.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
Y.shape
""",
"""
boxes = Y.reshape(h, w, 5, 4)
boxes[250, 250, 0, :]
""",
"""
(Y == npx.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])).all()
""",
"""
d2l.set_figsize()
bbox_scale = np.array((w, h, w, h))
fig = d2l.plt.imshow(img)
d2l.show_bboxes(fig.axes, boxes[250, 250, :, :] * bbox_scale,
                ['s=0.75, r=1', 's=0.5, r=1', 's=0.25, r=1', 's=0.75, r=2',
                 's=0.75, r=0.5'])
""",
"md:## 13.4.2 Intersection over Union",
"""
d2l.box_iou(np.array([[0, 0, 1, 1], [0, 0, 2, 2]]), np.array([[0, 0, 1, 1], [1, 1, 2, 2]]))
""",
"md:## 13.4.3 Labeling Training Set Anchor Boxes",
"""
ground_truth = np.array([[0, 0.1, 0.08, 0.52, 0.92],
                         [1, 0.55, 0.2, 0.9, 0.88]])
anchors = np.array([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4],
                    [0.63, 0.05, 0.88, 0.98], [0.66, 0.45, 0.8, 0.8],
                    [0.57, 0.3, 0.92, 0.9]])

fig = d2l.plt.imshow(img)
d2l.show_bboxes(fig.axes, ground_truth[:, 1:] * bbox_scale, ['dog', 'cat'], 'k')
d2l.show_bboxes(fig.axes, anchors * bbox_scale, ['0', '1', '2', '3', '4']);
""",
"""
labels = d2l.multibox_target(np.expand_dims(anchors, axis=0),
                             np.expand_dims(ground_truth, axis=0),
                             np.zeros((1, 3, 5)))
labels[2]
""",
"""
labels[1]
""",
"""
labels[0]
""",
"""
op = npx.multibox_target(np.expand_dims(anchors, axis=0),
                         np.expand_dims(ground_truth, axis=0), np.zeros((1, 3, 5)))
[float(np.abs(a - b).max()) for a, b in zip(labels, op)]
""",
"md:## 13.4.4 Bounding Boxes for Prediction",
"""
anchors = np.array([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                    [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]])
offset_preds = np.array([0] * anchors.size)
cls_probs = np.array([[0] * 4,  # Predicted probability for background
                      [0.9, 0.8, 0.7, 0.1],  # Predicted probability for dog
                      [0.1, 0.2, 0.3, 0.9]])  # Predicted probability for cat
""",
"""
fig = d2l.plt.imshow(img)
d2l.show_bboxes(fig.axes, anchors * bbox_scale,
                ['dog=0.9', 'dog=0.8', 'dog=0.7', 'cat=0.9'])
""",
"""
output = d2l.multibox_detection(
    np.expand_dims(cls_probs, axis=0),
    np.expand_dims(offset_preds, axis=0),
    np.expand_dims(anchors, axis=0),
    nms_threshold=0.5)
output
""",
"""
fig = d2l.plt.imshow(img)
for i in output[0].asnumpy():
    if i[0] == -1:
        continue
    label = ('dog=', 'cat=')[int(i[0])] + str(i[1])
    d2l.show_bboxes(fig.axes, [np.array(i[2:]) * bbox_scale], label)
""",
])

nb('13_05_multiscale.ipynb', [
"md:# 13.5 Multiscale Object Detection\n\nThe chapter's code with `d2l` = `d2lcv`; `d2l.display_anchors` is the chapter's function (drawing on `img/catdog.jpg`).",
"""
%matplotlib inline
import d2lcv as d2l
from mxnet import image, np, npx

npx.set_np()

img = image.imread('../img/catdog.jpg')
h, w = img.shape[0:2]
h, w
""",
"""
d2l.display_anchors(fmap_w=4, fmap_h=4, s=[0.15]);
""",
"""
d2l.display_anchors(fmap_w=2, fmap_h=2, s=[0.4]);
""",
"""
d2l.display_anchors(fmap_w=1, fmap_h=1, s=[0.8]);
""",
])

nb('13_08_rcnn.ipynb', [
"md:# 13.8 Region-based CNNs (R-CNNs)\n\nRoI pooling with `d2l.roi_pool` (d2lcv's vectorised version) and `npx.roi_pooling` (the operator), and RoIAlign. Column 0 of each RoI is the index of its image in the batch (the chapter calls it the category: see ERRATA).",
"""
import d2lcv as d2l
from mxnet import np, npx

npx.set_np()

X = np.arange(16).reshape(1, 1, 4, 4)
X
""",
"""
rois = np.array([[0, 0, 0, 20, 20], [0, 0, 10, 30, 30]])
""",
"""
npx.roi_pooling(X, rois, pooled_size=(2, 2), spatial_scale=0.1)
""",
"""
d2l.roi_pool(X, rois, pooled_size=(2, 2), spatial_scale=0.1)
""",
"""
d2l.roi_align(X, rois, pooled_size=(2, 2), spatial_scale=0.1)
""",
# --- "Train it" (issue 17): keep these cells last; earlier cells are the section's text ---
"md:## Train it: a small Faster R-CNN with a Mask R-CNN head\n\n`d2lcv.rcnn.TinyFasterRCNN` puts 13.8's pieces together at TinySSD's size: TinySSD's base net on the whole image (13.8.2 step 1), a region proposal network on three scales of anchors labelled by `multibox_target` (13.8.3 steps 1-3), proposals decoded and suppressed by `multibox_detection` (step 4), RoIAlign to 4x4 features per region (from the base net's stride-4 map), and a head of fully connected layers for class scores and box offsets (13.8.2 steps 3-4). With `mask=True` a small fully convolutional head predicts a 14x14 mask per region from RoIAlign features (13.8.4). The RPN and the heads are trained together, as the text says. Here: bananas with instance masks (a synthetic twin), 64x64 images, a few epochs on a CPU.",
"""
from d2lcv import rcnn

batch_size, num_epochs = 32, 6
train_iter, val_iter = rcnn.load_data_banana_masks(batch_size, num_train=256, num_val=64,
                                                   edge=64)
net = rcnn.TinyFasterRCNN(num_classes=1, mask=True)
result = rcnn.train_faster_rcnn(net, train_iter, num_epochs, val_iter=val_iter,
                                devices=d2l.try_all_gpus())
""",
"md:The shapes of every stage, for one batch of validation images: anchors and RPN outputs, the proposals, each region's RoIAlign features, the head's outputs.",
"""
X, Y, masks = next(iter(val_iter))
X = X.as_in_ctx(d2l.try_gpu())
anchors, rpn_cls, rpn_box, feat, fine = net.rpn(X)
proposals, scores = net.proposals(X)
Z = rcnn.roi_features(fine, proposals, X.shape[2:], net.roi_size)  # the stride-4 map
cls_preds, box_preds = net.box_head(Z)
anchors.shape, rpn_cls.shape, feat.shape, fine.shape, proposals.shape, Z.shape, cls_preds.shape
""",
"md:The eight best proposals of the RPN on the first images, then the best detection and its mask, drawn with 13.7's `display`.",
"""
imgs = (X.transpose(0, 2, 3, 1).asnumpy() / 255).clip(0, 1)
fig, axes = d2l.plt.subplots(2, 4, figsize=(10, 5))
for k in range(4):
    axes[0, k].imshow(imgs[k])
    d2l.show_bboxes(axes[0, k], proposals[k, :8] * 64, colors=['w'])
    output, mask = rcnn.predict(X[k:k + 1], net)
    rcnn.display(imgs[k], output[:1], threshold=0, ax=axes[1, k], masks=mask[:1])
""",
"md:Validation mAP (COCO-style, at IoU 0.5 and averaged over 0.5:0.95) and the mask IoU per banana, next to the trivial baseline that takes the same detections' filled boxes as masks. `benchmarks/bench_rcnn.py` compares the detector with TinySSD on the same banana twin and epochs.",
"""
val = rcnn.evaluate_rcnn(net, val_iter)
{k: round(val[k], 3) for k in ('map50', 'map', 'mask_iou', 'mask_iou_box')}
""",
])
