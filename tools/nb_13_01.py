"""Generate notebooks/13_01_image_augmentation.ipynb."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from make_notebook import make_notebook  # noqa: E402

CELLS = [
    ('md', '''
# 13.1 Image Augmentation

The chapter's section, reproduced with `d2lcv`. With `D2LCV_TINY=1` the CIFAR-10 images come
from the synthetic twin and training uses a small budget; without it, the real CIFAR-10 and
the chapter's 10 epochs of batch 256.'''),
    ('code', '''
%matplotlib inline
import d2lcv as d2l
from d2lcv import augment
from mxnet import gluon, image, init, np, npx
npx.set_np()'''),
    ('code', '''
d2l.set_figsize()
img = image.imread(augment.img_path('cat1.jpg'))
d2l.plt.imshow(img.asnumpy());'''),
    ('md', '''
## Flipping and cropping
`d2lcv`'s flips replace Gluon's `RandomFlipLeftRight`/`RandomFlipTopBottom`, which in
MXNet 1.9.1 zero the middle column/row of images with an odd width/height (this cat is 451
pixels wide).'''),
    ('code', 'd2l.apply(img, augment.RandomFlipLeftRight())'),
    ('code', 'd2l.apply(img, augment.RandomFlipTopBottom())'),
    ('code', '''
shape_aug = gluon.data.vision.transforms.RandomResizedCrop(
    (200, 200), scale=(0.1, 1), ratio=(0.5, 2))
d2l.apply(img, shape_aug)'''),
    ('md', '## Changing the color'),
    ('code', 'd2l.apply(img, gluon.data.vision.transforms.RandomBrightness(0.5))'),
    ('code', 'd2l.apply(img, gluon.data.vision.transforms.RandomHue(0.5))'),
    ('code', '''
color_aug = gluon.data.vision.transforms.RandomColorJitter(
    brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5)
d2l.apply(img, color_aug)'''),
    ('md', '## Overlaying multiple augmentations'),
    ('code', '''
aug = gluon.data.vision.transforms.Compose([
    augment.RandomFlipLeftRight(), color_aug, shape_aug])
d2l.apply(img, aug)'''),
    ('md', '## Training with image augmentation'),
    ('code', '''
d2l.show_images(augment.cifar10_dataset(is_train=True)[0:32][0], 4, 8, scale=0.8);'''),
    ('code', '''
train_augs = augment.train_augs()   # random left-right flip, ToTensor
test_augs = augment.test_augs()     # ToTensor
tiny = d2l.is_tiny()
# the chapter: batch 256, 10 epochs on the full data; tiny: a one-minute CPU budget
budget = dict(batch_size=16, num_epochs=2, limit_train=160, limit_test=100) if tiny else \\
    dict(batch_size=256, num_epochs=10)
devices, net = d2l.try_all_gpus(), d2l.resnet18(10)
net.initialize(init=init.Xavier(), ctx=devices)
net.hybridize()
result = d2l.train_with_data_aug(train_augs, test_augs, net, devices=devices, **budget)'''),
]

if __name__ == '__main__':
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    make_notebook(os.path.join(root, 'notebooks', '13_01_image_augmentation.ipynb'), CELLS)
