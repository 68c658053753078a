"""``d2lcv run augment``: section 13.1 on the cat photo and CIFAR-10 (twin when tiny)."""
from mxnet import image, init

from .. import augment, hub
from ..dist import kv_num_workers
from ..models import resnet18
from ..plot import show_images
from . import pos_int

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'augment'
SECTION = '13.1'
TITLE = 'Image augmentation'

OPTIONS = {
    'num_epochs': (pos_int, 'epochs (tiny 3, full 10)'),
    'batch_size': (pos_int, 'batch size per worker (tiny 16, full 256)'),
    'num_train': (pos_int, 'tiny only: training images used (default 320)'),
    'num_test': (pos_int, 'tiny only: test images used (default 200)'),
}


def run(run):
    rep = run.report
    img = image.imread(hub.img_path('cat1.jpg'))
    for name, make in augment.AUGMENTATIONS.items():
        axes = augment.apply(img, make())
        rep.figure(f'aug_{name}', axes[0].figure, f'{name}: 8 draws of the augmentation')
    data = augment.cifar10_dataset(True, tiny=run.tiny)
    axes = show_images([data[i][0] for i in range(32)], 4, 8, scale=0.8)
    rep.figure('cifar10_first32', axes[0].figure,
               'first 32 training images' + (' (synthetic twin)' if run.tiny else ''))

    opts = run.options
    # dist kvstore: batch_size is per worker; dividing the default keeps the one-process
    # run's global batch and number of steps
    workers = kv_num_workers(run.kvstore)
    if run.tiny:
        # ResNet-18 trains at ~23 examples/s on a 2-core CPU: a one-minute budget; small
        # batches so BatchNorm's running statistics settle (momentum 0.9) within it
        batch_size = opts.get('batch_size', max(1, 16 // workers))
        num_epochs = opts.get('num_epochs', 3)
        num_train, num_test = opts.get('num_train', 320), opts.get('num_test', 200)
    else:
        batch_size = opts.get('batch_size', max(1, 256 // workers))
        num_epochs = opts.get('num_epochs', 10)
        num_train = num_test = None
    net = resnet18(10)
    net.initialize(init=init.Xavier(), ctx=run.devices)
    net.hybridize()
    result = augment.train_with_data_aug(
        augment.train_augs(), augment.test_augs(), net, batch_size=batch_size,
        num_epochs=num_epochs, devices=run.devices, tiny=run.tiny,
        save_path=rep.path('13_1_training.png'), limit_train=num_train, limit_test=num_test,
        kvstore=run.kvstore)
    rep.attach('13_1_training.png', 'ResNet-18 with random left-right flips: loss and accuracy')
    if run.tiny and result['test_acc'] is not None:  # rank 0 (a dist run's others: None)
        # the rule without learned features the model must beat (issue 12)
        from ..hub import synth_twin
        from ..synth.baselines import cifar_baseline
        base = cifar_baseline(synth_twin('cifar10'), num_train, num_test)
        rep.metric('baseline_test_acc', round(base, 4))
        rep.note(f'Trivial baseline (colour-histogram nearest neighbour on the same images): '
                 f'test accuracy {base:.3f} against the model\'s {result["test_acc"]:.3f}.')
    for key in ('train_loss', 'train_acc', 'test_acc', 'examples_per_sec', 'epochs_run'):
        rep.metric(key, result[key])
    where = f'{run.devices}' + (f' x {workers} workers ({run.kvstore.type}, batch per '
                                'worker, rank 0\'s shard metrics)' if workers > 1 else '')
    rep.note(f'ResNet-18 (13.13 variant), Adam lr 0.001, batch {batch_size}, {num_epochs} '
             f'epochs on {where}; data: '
             + (f'synthetic CIFAR-10 twin, first {num_train} training and {num_test} test '
                'images' if run.tiny else 'CIFAR-10'))
