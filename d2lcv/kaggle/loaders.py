"""Reading an organised Kaggle folder: the chapter's transforms, the four image-folder
data sets and their ``DataLoader``\\ s."""
import os

from mxnet import gluon

from ..dist import shard_loader
from ..imagecheck import ImageFolderDataset, check_image_folder
from ..imagerec import augment_spec, fast_loader, pack_side, tag
from .reorg import SPLITS, KaggleDataError

__all__ = ['transform_train_cifar10', 'transform_test_cifar10', 'transform_train_dog',
           'transform_test_dog', 'read_image_folders', 'subsample', 'kaggle_loaders',
           'CIFAR10_MEAN', 'CIFAR10_STD', 'IMAGENET_MEAN', 'IMAGENET_STD']

# the chapter's normalisations: CIFAR-10 channel statistics, and ImageNet's for the dogs
CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _T():
    return gluon.data.vision.transforms


def transform_train_cifar10():
    """13.13's training augmentation: resize to 40, random crop of 64-100 % of the area
    back to 32x32, random flip, ``ToTensor`` and CIFAR-10 normalisation ->
    ``(3, 32, 32)``."""
    T = _T()
    return tag(T.Compose([T.Resize(40),
                          T.RandomResizedCrop(32, scale=(0.64, 1.0), ratio=(1.0, 1.0)),
                          T.RandomFlipLeftRight(), T.ToTensor(),
                          T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]),
               augment_spec(32, (0.64, 1.0), (1.0, 1.0), resize=40, mean=CIFAR10_MEAN,
                            std=CIFAR10_STD))


def transform_test_cifar10():
    """13.13's test transform: ``ToTensor`` and normalisation only -> ``(3, 32, 32)``."""
    T = _T()
    return T.Compose([T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


def transform_train_dog(size=224):
    """13.14's training augmentation -> ``(3, size, size)``: random resized crop (8-100 % of
    the area, aspect 3/4-4/3), flip, colour jitter 0.4, lighting noise 0.1, ImageNet
    normalisation. ``size=224`` is the chapter's; smaller sizes serve CPU runs."""
    T = _T()
    return tag(T.Compose([T.RandomResizedCrop(size, scale=(0.08, 1.0),
                                              ratio=(3.0 / 4.0, 4.0 / 3.0)),
                          T.RandomFlipLeftRight(),
                          T.RandomColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
                          T.RandomLighting(0.1), T.ToTensor(),
                          T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]),
               augment_spec(size, (0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0), jitter=0.4,
                            lighting=0.1, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                            pack_resize=pack_side(size)))


def transform_test_dog(size=224):
    """13.14's test transform -> ``(3, size, size)``: resize to a ``size * 256 / 224`` square
    (the chapter's ``Resize(256)``, which does not keep the aspect ratio), centre crop,
    ImageNet normalisation."""
    T = _T()
    return T.Compose([T.Resize(round(size * 256 / 224)), T.CenterCrop(size),
                      T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def read_image_folders(data_dir, folders=SPLITS):
    """``ImageFolderDataset``\\ s over ``data_dir/train_valid_test/<folder>`` (the chapter's
    ``train_ds, valid_ds, train_valid_ds, test_ds``). Unreadable or truncated images raise
    :class:`d2lcv.imagecheck.ImageDataError` naming them."""
    out = []
    for folder in folders:
        path = os.path.join(data_dir, 'train_valid_test', folder)
        if not os.path.isdir(path):
            raise KaggleDataError(f'{path}: missing; run reorg_cifar10_data / reorg_dog_data '
                                  'first')
        check_image_folder(path)  # a truncated image would train as a partial picture
        out.append(ImageFolderDataset(path))
    return out


class _EverySampler(gluon.data.Sampler):
    """Indices ``0, every, 2 * every, ...`` below ``length``."""

    def __init__(self, length, every):
        self._indices = range(0, length, every)

    def __iter__(self):
        return iter(self._indices)

    def __len__(self):
        return len(self._indices)


def subsample(dataset, every):
    """Every ``every``-th example of ``dataset`` (keeps ``synsets``): a quick CPU demo subset.

    ``ImageFolderDataset`` lists images class by class, so every class keeps about
    ``1 / every`` of its images.
    """
    out = dataset.sample(_EverySampler(len(dataset), every))
    out.synsets = getattr(dataset, 'synsets', None)
    return out


def kaggle_loaders(datasets, batch_size, transform_train, transform_test, num_workers=None,
                   kvstore=None):
    """The chapter's four ``DataLoader``\\ s from ``(train_ds, valid_ds, train_valid_ds,
    test_ds)``: returns ``(train_iter, valid_iter, train_valid_iter, test_iter)``.

    Training loaders shuffle and drop the last partial batch, as in the chapter; the validation
    and test loaders keep it (every validation image is scored, every test image predicted).
    Batches: ``X (B, 3, H, W)`` float32, ``y (B,)``.

    ``kvstore``: with a dist ``KVStore`` (``d2lcv.dist.create_kvstore('dist_sync')``) the two
    training loaders read only this worker's equal shard (:func:`d2lcv.dist.shard_loader`),
    as :func:`train_cifar10` / :func:`train_dog` with that kvstore need; ``batch_size`` is
    then per worker. The validation and test loaders are whole (one worker evaluates).
    """
    from ..train import get_dataloader_workers
    workers = get_dataloader_workers() if num_workers is None else num_workers
    train_ds, valid_ds, train_valid_ds, test_ds = datasets
    train_iter, train_valid_iter = [fast_loader(ds, transform_train, batch_size, kvstore) or
                                    shard_loader(ds.transform_first(transform_train),
                                                 batch_size, kvstore, shuffle=True,
                                                 last_batch='discard', num_workers=workers)
                                    for ds in (train_ds, train_valid_ds)]
    valid_iter, test_iter = [gluon.data.DataLoader(
        ds.transform_first(transform_test), batch_size, shuffle=False, last_batch='keep',
        num_workers=workers) for ds in (valid_ds, test_ds)]
    return train_iter, valid_iter, train_valid_iter, test_iter
