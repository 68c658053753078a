"""Section 13.2, fine-tuning: hot dog recognition with a pretrained ResNet.

The chapter's pieces: the hot dog data set (:func:`load_hotdog`, :func:`hotdog_datasets`),
its augmentations (:func:`train_augs`, :func:`test_augs`), the fine-tuned network
(:func:`make_finetune_net`: the source model's ``features``, a new 2-class ``output`` with
``lr_mult=10``), :func:`train_fine_tuning`, the scratch baseline, the frozen-features variant
(exercise 3, :func:`freeze_features`) and the reuse of the source model's "hot dog" output row
(exercise 4, :func:`hotdog_weight`, :func:`init_output_from_source`).

With ImageNet weights (``d2lcv.models.get_pretrained('resnet18_v2')``) and the real data this is
the chapter's experiment. Offline there are no ImageNet weights, so
:func:`compare_finetune_scratch` runs an honest stand-in: a small ResNet
(:func:`small_resnet`) is pre-trained on a *synthetic source task* (10 kinds of drawn food,
:func:`d2lcv.synth.hotdog.source_task`; cached under the data folder), then fine-tuned on the
synthetic hot dog twin and compared with the same network trained from scratch.
"""
import hashlib
import json
import os
import random

import numpy as onp
from mxnet import gluon, init, np
from mxnet.gluon import nn
from mxnet.gluon.data.vision import transforms

from .devices import resolve_devices
from .dist import create_kvstore, shard_loader
from .hub import data_dir, download_extract
from .imagecheck import ImageFolderDataset, check_image_folder
from .imagerec import augment_spec, fast_loader, pack_side, tag
from .models import resnet_block
from .train import get_dataloader_workers, train_ch13

__all__ = ['load_hotdog', 'hotdog_datasets', 'normalize', 'train_augs', 'test_augs',
           'FineTuneNet', 'make_finetune_net', 'freeze_features', 'hotdog_weight',
           'init_output_from_source', 'train_fine_tuning', 'small_resnet',
           'pretrain_source', 'compare_finetune_scratch', 'evaluate', 'set_seed',
           'IMAGENET_HOTDOG_ROW', 'imagenet_hotdog_net', 'compare_imagenet',
           'RGB_MEAN', 'RGB_STD']

#: ImageNet's "hotdog" class: row 713 of the model zoo networks' 1000-way output layer.
IMAGENET_HOTDOG_ROW = 713
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def set_seed(seed):
    """Seed Python's, NumPy's and MXNet's generators (shuffling, augmentation, init)."""
    import mxnet as mx
    random.seed(seed)
    onp.random.seed(seed)
    mx.random.seed(seed)


# ----------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------

def load_hotdog(tiny=None):
    """``download_extract('hotdog')``: the folder holding ``train/`` and ``test/``.

    The real archive (sha1-checked), or its synthetic twin with ``tiny`` / ``D2LCV_TINY=1``.
    """
    return download_extract('hotdog', tiny=tiny)


def hotdog_datasets(data_dir=None, tiny=None):
    """``(train_imgs, test_imgs)``: ``ImageFolderDataset``s of ``(image (H, W, 3), label)``.

    Labels follow the sorted folder names: 0 = ``hotdog``, 1 = ``not-hotdog``. Unreadable or
    truncated images raise :class:`d2lcv.imagecheck.ImageDataError` naming them.
    """
    data_dir = data_dir or load_hotdog(tiny)
    sets = []
    for split in ('train', 'test'):
        folder = os.path.join(data_dir, split)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'hot dog data: folder {folder} is missing')
        check_image_folder(folder)  # a truncated JPEG would train as a partial picture
        sets.append(ImageFolderDataset(folder))
    if sets[0].synsets != ['hotdog', 'not-hotdog']:
        raise ValueError(f'{data_dir}/train: expected class folders hotdog and not-hotdog, '
                         f'found {sets[0].synsets}')
    return tuple(sets)


def normalize():
    """Per-channel normalisation with ImageNet's mean and standard deviation."""
    return transforms.Normalize(RGB_MEAN, RGB_STD)


def train_augs(size=224, scale=(0.08, 1.0)):
    """The chapter's training transform: random resized crop to ``size``, flip, normalise.
    (``fast_spec``: the same for :mod:`d2lcv.imagerec`'s fast input path.)"""
    return tag(transforms.Compose([transforms.RandomResizedCrop(size, scale=scale),
                                   transforms.RandomFlipLeftRight(), transforms.ToTensor(),
                                   normalize()]),
               augment_spec(size, scale, mean=RGB_MEAN, std=RGB_STD,
                            pack_resize=pack_side(size)))


def test_augs(size=224, resize=256):
    """The chapter's test transform: resize to ``resize`` x ``resize`` (the aspect ratio is
    not kept, as in the chapter's ``Resize(256)``), centre-crop ``size``, normalise."""
    return transforms.Compose([transforms.Resize(resize),
                               transforms.CenterCrop(size), transforms.ToTensor(),
                               normalize()])


# ----------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------

class FineTuneNet(nn.HybridBlock):
    """``output(features(X))``: a source model's ``features`` and a new ``output`` layer.

    The same two members as Gluon's model zoo networks, so the chapter's
    ``finetune_net.features`` / ``finetune_net.output`` work unchanged.
    """

    def __init__(self, features, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.output = nn.Dense(num_classes)

    def hybrid_forward(self, F, X):
        return self.output(self.features(X))


def make_finetune_net(pretrained_net, num_classes=2, lr_mult=10, freeze=False, ctx=None):
    """The target model of 13.2: ``pretrained_net.features`` and a new Xavier output layer.

    Parameters
    ----------
    pretrained_net : Block with ``features`` and ``output``
        The source model (e.g. ``get_pretrained('resnet18_v2')``); its ``features`` are
        shared, not copied.
    num_classes : int
        Outputs of the new layer (2 for hot dog / not hot dog).
    lr_mult : float
        Learning-rate multiplier of the new output layer only (the chapter's 10).
    freeze : bool
        Exercise 3: do not update the features' parameters (:func:`freeze_features`).

    Returns
    -------
    net : FineTuneNet, ``(B, 3, H, W) -> (B, num_classes)``
    """
    net = FineTuneNet(pretrained_net.features, num_classes)
    if ctx is None:
        ctx = list(pretrained_net.collect_params().values())[0].list_ctx()
    net.output.initialize(init.Xavier(), ctx=ctx)
    net.output.collect_params().setattr('lr_mult', lr_mult)
    if freeze:
        freeze_features(net)
    return net


def freeze_features(net, batch_norm_stats=False):
    """Exercise 3: stop updating ``net.features``. Returns ``net``.

    Sets ``grad_req='null'`` on every feature parameter (the chapter's line): a training
    step changes nothing in the features (MXNet updates BatchNorm's running statistics in
    the backward pass, which frozen features skip), but BatchNorm layers in training mode
    still normalise with each batch's statistics. With ``batch_norm_stats=True`` they use
    the source's running statistics instead, as at test time (on the twin the features are
    then larger, and the chapter's output learning rate of 0.1 oscillates: use a smaller
    one). Call it before ``hybridize`` (``train_fine_tuning``
    hybridizes afterwards, which rebuilds the graph).
    """
    net.features.collect_params().setattr('grad_req', 'null')
    if batch_norm_stats:
        def use_global_stats(block):
            if isinstance(block, nn.BatchNorm):
                block._kwargs['use_global_stats'] = True
        net.features.apply(use_global_stats)
    return net


def hotdog_weight(pretrained_net, row=IMAGENET_HOTDOG_ROW):
    """Exercise 4: the source output layer's "hot dog" row, shape ``(1, num_features)``."""
    weight = pretrained_net.output.weight.data()
    return np.split(weight, weight.shape[0], axis=0)[row]


def init_output_from_source(net, pretrained_net, row=IMAGENET_HOTDOG_ROW, hotdog_index=0):
    """Exercise 4: start ``net.output`` (2 classes) from the source's output layer.

    The hot dog output (``hotdog_index``, 0 for ``ImageFolderDataset``'s sorted folders) gets
    the source's hot dog row and bias; the other output gets the mean of all the other rows,
    a linear stand-in for "any other class". Before any training the network is then already
    a hot dog detector. Returns ``net``.
    """
    W = pretrained_net.output.weight.data()
    b = pretrained_net.output.bias.data()
    q = W.shape[0]
    if not 0 <= row < q:
        raise ValueError(f'row {row} is outside the source output layer ({q} rows)')
    others = onp.array([i for i in range(q) if i != row])
    W_new = np.stack([W[row], W[others].mean(axis=0)])
    b_new = np.stack([b[row], b[others].mean()])
    if hotdog_index == 1:
        W_new, b_new = W_new[::-1], b_new[::-1]
    for param, value in ((net.output.weight, W_new), (net.output.bias, b_new)):
        known = [d for d in param.shape if d > 0]  # -1/0: inferred at the first forward
        if len(param.shape) != value.ndim or any(
                a > 0 and a != b for a, b in zip(param.shape, value.shape)):
            raise ValueError(f'{param.name}: shape {param.shape}, the source gives '
                             f'{value.shape}')
        if len(known) < value.ndim:
            param.shape = value.shape
        param.set_data(value)
    return net


def small_resnet(num_classes=10, width=16):
    """A small ResNet for 32x32 inputs, with the model zoo's ``features`` / ``output`` split.

    ``(B, 3, H, W) -> (B, num_classes)``; ``width``, 2x and 4x channels (one residual block
    each, the last two halving the resolution).
    """
    features = nn.HybridSequential()
    features.add(nn.Conv2D(width, kernel_size=3, padding=1), nn.BatchNorm(),
                 nn.Activation('relu'), resnet_block(width, 1, first_block=True),
                 resnet_block(2 * width, 1), resnet_block(4 * width, 1), nn.GlobalAvgPool2D(),
                 nn.Flatten())
    return FineTuneNet(features, num_classes)


# ----------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------

def train_fine_tuning(net, learning_rate, batch_size=128, num_epochs=5, devices=None, *,
                      train_imgs=None, test_imgs=None, train_transform=None,
                      test_transform=None, wd=0.001, tiny=None, save_path=None,
                      verbose=True, kvstore='device', **train_kwargs):
    """Train ``net`` on the hot dog data with SGD (weight decay ``wd``), as in 13.2.

    ``train_imgs`` / ``test_imgs`` default to :func:`hotdog_datasets` (the twin when
    ``tiny``), the transforms to the chapter's 224-pixel :func:`train_augs` /
    :func:`test_augs`. Other keywords go to :func:`train_ch13` (``checkpoint``,
    ``progress``...). Returns ``train_ch13``'s result dict (``train_loss``, ``train_acc``,
    ``test_acc``, ``examples_per_sec``...).

    ``kvstore``: the Trainer's (``'device'``, ``'local'``, ``'dist_sync'``, ``'dist_async'``
    or a ``KVStore``); with a dist one each worker reads its own shard of ``train_imgs`` and
    the rules of docs/distributed.md ("What changes with a dist kvstore") apply.
    """
    devices = resolve_devices(devices)
    if train_imgs is None or test_imgs is None:
        train_imgs, test_imgs = hotdog_datasets(tiny=tiny)
    train_transform = train_transform or train_augs()
    test_transform = test_transform or test_augs()
    workers = get_dataloader_workers()
    kv = create_kvstore(kvstore)
    train_iter = fast_loader(train_imgs, train_transform, batch_size, kv) or shard_loader(
        train_imgs.transform_first(train_transform), batch_size, kv, num_workers=workers)
    test_iter = gluon.data.DataLoader(test_imgs.transform_first(test_transform), batch_size,
                                      num_workers=workers)
    net.collect_params().reset_ctx(devices)
    net.hybridize()
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    trainer = gluon.Trainer(net.collect_params(), 'sgd',
                            {'learning_rate': learning_rate, 'wd': wd}, kvstore=kv)
    return train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices,
                      save_path=save_path, verbose=verbose, kvstore=kv, **train_kwargs)


class _ArrayBatches:
    """Minibatches ``(X (B, 3, H, W) float32 normalised, y (B,))`` of in-memory images.

    Normalises all images once and flips a random half of each training batch in one
    vectorised operation, instead of running per-image transforms in Python.
    """

    def __init__(self, images, labels, batch_size, shuffle=False, flip=False, seed=0):
        X = images.astype(onp.float32).transpose(0, 3, 1, 2) / 255
        mean = onp.array(RGB_MEAN, onp.float32)[:, None, None]
        std = onp.array(RGB_STD, onp.float32)[:, None, None]
        self.X, self.y = (X - mean) / std, labels.astype(onp.float32)
        self.batch_size, self.shuffle, self.flip = batch_size, shuffle, flip
        self.rng = onp.random.default_rng(seed)

    def __len__(self):
        n = len(self.y) // self.batch_size
        return n if self.shuffle else -(-len(self.y) // self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.y)) if self.shuffle else onp.arange(len(self.y))
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            X = self.X[idx]
            if self.flip:
                flip = self.rng.random(len(idx)) < 0.5
                X = onp.where(flip[:, None, None, None], X[..., ::-1], X)
            yield np.array(X), np.array(self.y[idx])


def _source_cache_path(config):
    key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    return os.path.join(data_dir(), 'source-task', f'small_resnet_food10_{key}')


def pretrain_source(num_per_class=200, num_epochs=5, batch_size=64, learning_rate=0.05,
                    seed=0, devices=None, force=False, verbose=True):
    """A :func:`small_resnet` pre-trained on the synthetic food source task (cached).

    The source task is 10-way classification of drawn food on 32x32 images
    (:func:`d2lcv.synth.hotdog.source_task`, ``10 * num_per_class`` training images and 100
    test images per class), trained with SGD + momentum and a cosine learning-rate decay.
    The parameters are stored under
    ``<data>/source-task/`` with a JSON of the settings and source accuracies, and reused
    when the settings match (``force`` retrains). These are **not** ImageNet weights.

    Returns
    -------
    net : FineTuneNet with 10 outputs (class 0 is the hot dog)
    info : dict with the settings, ``source_test_acc`` and ``params`` (the cached file)
    """
    import mxnet as mx
    from .synth.hotdog import source_task
    devices = resolve_devices(devices)
    config = dict(num_per_class=num_per_class, num_epochs=num_epochs, batch_size=batch_size,
                  learning_rate=learning_rate, seed=seed, version=2)
    path = _source_cache_path(config)
    net = small_resnet(10)
    if not force and os.path.exists(path + '.json') and os.path.exists(path + '.params'):
        net.load_parameters(path + '.params', ctx=devices)
        with open(path + '.json') as f:
            return net, json.load(f)
    set_seed(seed)
    X, y = source_task(num_per_class, seed=100 + seed)
    Xt, yt = source_task(100, seed=200 + seed)
    train_iter = _ArrayBatches(X, y, batch_size, shuffle=True, flip=True, seed=seed)
    test_iter = _ArrayBatches(Xt, yt, 256)
    net.initialize(init.Xavier(), ctx=devices)
    net.hybridize()
    # cosine decay to 0: the cached model is the end of a settled run, not a noisy step
    schedule = mx.lr_scheduler.CosineScheduler(max(1, num_epochs * len(train_iter)),
                                               base_lr=learning_rate, final_lr=0)
    trainer = gluon.Trainer(net.collect_params(), 'sgd',
                            {'learning_rate': learning_rate, 'momentum': 0.9, 'wd': 1e-4,
                             'lr_scheduler': schedule})
    result = train_ch13(net, train_iter, test_iter, gluon.loss.SoftmaxCrossEntropyLoss(),
                        trainer, num_epochs, devices, save_path=path + '_training.png',
                        verbose=verbose)
    info = dict(config, source_train_acc=result['train_acc'],
                source_test_acc=result['test_acc'], source_classes=10,
                source_train_images=len(y), params=path + '.params',
                note='synthetic food source task (d2lcv.synth.hotdog.source_task), '
                     'not ImageNet')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    net.save_parameters(path + '.params.tmp')
    os.replace(path + '.params.tmp', path + '.params')
    with open(path + '.json.tmp', 'w') as f:
        json.dump(info, f, indent=1)
    os.replace(path + '.json.tmp', path + '.json')
    return net, info


def evaluate(net, imgs, transform, batch_size=128):
    """Accuracy of ``net`` (on the devices it lives on) on ``imgs`` under ``transform``."""
    from .train import evaluate_accuracy_gpus
    it = gluon.data.DataLoader(imgs.transform_first(transform), batch_size,
                               num_workers=get_dataloader_workers())
    return evaluate_accuracy_gpus(net, it)


def compare_finetune_scratch(num_epochs=5, batch_size=32, finetune_lr=0.01, scratch_lr=0.1,
                             size=32, crop_scale=(0.08, 1.0), seed=0, devices=None,
                             data_dir=None, variants=('finetune', 'scratch', 'frozen'),
                             source=None, fig_dir=None, verbose=True):
    """13.2's comparison, offline: fine-tuning a source-pretrained network vs. scratch.

    The source model is :func:`pretrain_source` (a small ResNet on the synthetic food task;
    ``source`` passes its keyword arguments); the target is the hot dog twin
    (``data_dir``, default the twin of ``load_hotdog(tiny=True)``) at ``size`` pixels. Each
    variant starts from the same seed and trains ``num_epochs`` epochs with
    :func:`train_fine_tuning`:

    - ``'finetune'``: source features + new output (``lr_mult=10``), SGD at ``finetune_lr``;
    - ``'scratch'``: the same architecture, Xavier-initialised, SGD at ``scratch_lr``;
    - ``'frozen'``: exercise 3, source features not updated, SGD at ``finetune_lr``.

    Also measured, without any training: exercise 4, the output initialised from the
    source's hot dog row (:func:`init_output_from_source`, row 0 of the source task).

    Returns a dict: per variant the ``train_ch13`` result, plus ``'source'`` (the source
    model's info) and ``'zero_shot_test_acc'``.
    """
    devices = resolve_devices(devices)
    source = dict(source or {})
    source.setdefault('devices', devices)
    source.setdefault('verbose', verbose)
    train_imgs, test_imgs = hotdog_datasets(data_dir or load_hotdog(tiny=True))
    resize = int(round(size * 256 / 224))
    tr, te = train_augs(size, scale=crop_scale), test_augs(size, resize=resize)
    out = {}
    _, out['source'] = pretrain_source(**source)
    for variant in variants:
        set_seed(seed)
        if variant == 'scratch':
            net = small_resnet(2)
            net.initialize(init.Xavier(), ctx=devices)
            lr = scratch_lr
        elif variant in ('finetune', 'frozen'):
            pretrained, _ = pretrain_source(**source)  # fresh: fine-tuning changes features
            net = make_finetune_net(pretrained, 2, freeze=variant == 'frozen')
            lr = finetune_lr
        else:
            raise ValueError(f'unknown variant {variant!r}')
        if verbose:
            print(f'{variant}: lr {lr}, {num_epochs} epochs')
        save_path = os.path.join(fig_dir, f'{variant}.png') if fig_dir else None
        out[variant] = train_fine_tuning(
            net, lr, batch_size, num_epochs, devices, train_imgs=train_imgs,
            test_imgs=test_imgs, train_transform=tr, test_transform=te, save_path=save_path,
            verbose=verbose)
    pretrained, _ = pretrain_source(**source)
    net = make_finetune_net(pretrained, 2)
    init_output_from_source(net, pretrained, row=0)
    out['zero_shot_test_acc'] = evaluate(net, test_imgs, te)
    return out


# ----------------------------------------------------------------------------------------
# Offline ImageNet weights: EfficientNet-Lite0
# ----------------------------------------------------------------------------------------

def imagenet_hotdog_net(variant, num_classes=2, backbone='efficientnet_lite0', devices=None):
    """A hot dog network built on an offline ImageNet backbone, for :func:`compare_imagenet`.

    ``variant``: ``'finetune'`` (ImageNet features + new Xavier output with ``lr_mult=10``,
    the chapter's ``make_finetune_net``), ``'frozen'`` (exercise 3: the same, features not
    updated and their BatchNorm layers on ImageNet's running statistics, so the features are
    exactly ImageNet's), ``'scratch'`` (the same architecture, He-initialised, all
    ``num_classes`` outputs new). ``backbone``: an offline name of
    :data:`d2lcv.weights.OFFLINE_WEIGHTS` (converted on first use). Returns the network on
    ``devices``; ``net.weights_note`` says where its weights came from.
    """
    from .efficientnet import efficientnet_lite0, initialize_random
    from .models import get_pretrained
    devices = resolve_devices(devices)
    if variant == 'scratch':
        if backbone != 'efficientnet_lite0':
            raise ValueError(f'no scratch architecture for {backbone!r}')
        net = efficientnet_lite0(classes=num_classes, prefix='scratch_')
        initialize_random(net, ctx=devices)
        net.weights_note = 'EfficientNet-Lite0, He-initialised (no pretrained weights)'
        return net
    if variant not in ('finetune', 'frozen'):
        raise ValueError(f"variant must be 'finetune', 'scratch' or 'frozen', not {variant!r}")
    pretrained = get_pretrained(backbone, ctx=devices)
    net = make_finetune_net(pretrained, num_classes, ctx=devices)
    if variant == 'frozen':
        freeze_features(net, batch_norm_stats=True)
    info = pretrained.pretrained_info
    net.weights_note = (f'ImageNet {backbone} ({info["package"]}=={info["version"]}, '
                        f'{info["licence"]})')
    # kept for exercise 4 (its ImageNet output layer), but not as a child block: its unused
    # output layer would enter the hybridized graph's parameters
    object.__setattr__(net, 'pretrained_net', pretrained)
    return net


def compare_imagenet(num_epochs=2, batch_size=32, size=64, finetune_lr=0.01,
                     scratch_lr=0.01, frozen_lr=0.001, seeds=(0,), devices=None,
                     data_dir=None, variants=('finetune', 'scratch', 'frozen'),
                     backbone='efficientnet_lite0', fig_dir=None, zero_shot=True,
                     verbose=True):
    """13.2 offline on real ImageNet weights: fine-tuning vs scratch vs frozen features.

    Each variant (:func:`imagenet_hotdog_net`) trains ``num_epochs`` epochs with the
    chapter's SGD, with two learning rates changed: scratch 0.01 (the chapter's 0.1 makes
    EfficientNet-Lite0's training loss climb to ~4 on the twin), frozen features 0.001, i.e.
    0.01 for the output layer (their BatchNorm layers use ImageNet's running statistics and
    the pooled ReLU6 features are large: 0.1 makes the loss oscillate up to ~7) (:func:`train_fine_tuning`, wd 1e-3) on the hot dog data
    (``data_dir``, default the twin), with the chapter's augmentations at ``size`` pixels
    (``train_augs(size)``, ``test_augs(size, resize=size * 256 / 224)``), once per seed in
    ``seeds``; every variant sees the same seed, hence the same initial output layer draw
    order and the same shuffles. ``zero_shot``: also the accuracy of exercise 4 without
    training (the output initialised from ImageNet's "hotdog" row 713,
    :func:`init_output_from_source`).

    Returns ``{variant: {'runs': [train_ch13 results], 'test_acc': [...], 'mean': m,
    'std': s}, 'zero_shot_test_acc': a, 'weights': note, 'settings': {...}}``.
    """
    devices = resolve_devices(devices)
    train_imgs, test_imgs = hotdog_datasets(data_dir or load_hotdog(tiny=True))
    resize = int(round(size * 256 / 224))
    tr, te = train_augs(size), test_augs(size, resize=resize)
    lrs = {'finetune': finetune_lr, 'scratch': scratch_lr, 'frozen': frozen_lr}
    out = {'settings': dict(num_epochs=num_epochs, batch_size=batch_size, size=size,
                            seeds=list(seeds), lrs={v: lrs[v] for v in variants},
                            backbone=backbone, train_images=len(train_imgs),
                            test_images=len(test_imgs))}
    for variant in variants:
        runs = []
        for seed in seeds:
            set_seed(seed)
            net = imagenet_hotdog_net(variant, 2, backbone, devices)
            if variant != 'scratch':
                out['weights'] = net.weights_note
            if verbose:
                print(f'{variant} (seed {seed}): lr {lrs[variant]}, {num_epochs} epochs, '
                      f'{size} px')
            save_path = (os.path.join(fig_dir, f'imagenet_{variant}_seed{seed}.png')
                         if fig_dir else None)
            runs.append(train_fine_tuning(
                net, lrs[variant], batch_size, num_epochs, devices, train_imgs=train_imgs,
                test_imgs=test_imgs, train_transform=tr, test_transform=te,
                save_path=save_path, verbose=verbose))
        accs = [r['test_acc'] for r in runs]
        out[variant] = {'runs': runs, 'test_acc': accs, 'mean': float(onp.mean(accs)),
                        'std': float(onp.std(accs))}
    if zero_shot:
        net = imagenet_hotdog_net('finetune', 2, backbone, devices)
        init_output_from_source(net, net.pretrained_net, row=IMAGENET_HOTDOG_ROW)
        out['zero_shot_test_acc'] = evaluate(net, test_imgs, te)
    return out
