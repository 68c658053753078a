"""``d2lcv run kaggle-cifar10``: section 13.13 end to end (twin when tiny), submission.csv."""
import os

from .. import hub, kaggle
from . import kaggle_options, pos_int, report_kaggle_baseline, report_kaggle_outputs

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'kaggle-cifar10'
SECTION = '13.13'
TITLE = 'Image classification (CIFAR-10) on Kaggle'

OPTIONS = kaggle_options(
    {'num_epochs': 'tiny 2, full 5', 'batch_size': 'tiny 16, full 128', 'lr': 'tiny 0.01, full 0.1',
     'wd': '5e-4', 'lr_period': '50', 'refit': 'tiny 0, full 1'}, 'class',
    num_train=(pos_int, 'tiny only: training images in the twin (600)'))


def _data_dir(run, num_train):
    if run.options.get('data_dir'):  # the full competition folder, e.g. ../data/cifar-10
        return run.options['data_dir']
    if run.tiny and num_train != 1000:
        # a smaller twin, same layout, in its own folder next to the default one
        return hub.synth_twin('cifar10_tiny', root=os.path.join(
            hub.data_dir(), 'tiny', f'cifar10_tiny-{num_train}'), num_train=num_train)
    return hub.download_extract('cifar10_tiny', tiny=run.tiny)


def run(run):
    rep, opts = run.report, run.options
    if run.tiny:
        # ResNet-18 runs at ~25-40 examples/s on a 2-core CPU: a one-minute budget buys two
        # epochs on 540 images, not also the refit on train_valid (--set refit=1 adds it).
        # Batch 16 at lr 0.01 (the chapter's 0.1 at batch 128, scaled down with the batch):
        # 68 steps. Measured on the twin (60 valid images, colour baseline 0.08): batch 16,
        # lr 0.01 0.64 / 0.58 / 0.60; lr 0.02 0.52 / 0.64; batch 32, lr 0.02 0.32; the
        # earlier batch 32, lr 0.05 stayed at chance (0.08-0.12)
        num_train = opts.get('num_train', 600)
        batch_size, num_epochs = opts.get('batch_size', 16), opts.get('num_epochs', 2)
        lr, refit = opts.get('lr', 0.01), bool(opts.get('refit', 0))
    else:
        num_train = None
        batch_size, num_epochs = opts.get('batch_size', 128), opts.get('num_epochs', 5)
        lr, refit = opts.get('lr', 0.1), bool(opts.get('refit', 1))
    data_dir = _data_dir(run, num_train)
    wd = opts.get('wd', 5e-4)
    lr_period, lr_decay = opts.get('lr_period', 50), opts.get('lr_decay', 0.1)
    sub = rep.path('13_13_submission.csv')
    out = kaggle.kaggle_cifar10(
        data_dir, valid_ratio=opts.get('valid_ratio', 0.1), batch_size=batch_size,
        num_epochs=num_epochs, lr=lr, wd=wd, lr_period=lr_period, lr_decay=lr_decay,
        devices=run.devices, refit=refit, submission=sub,
        save_dir=rep.out_dir)
    report_kaggle_outputs(
        rep, out, [('cifar10_valid.png', 'ResNet-18 on train/, accuracy on valid/'),
                   ('cifar10_final.png', 'refit on train_valid/ (for the submission)')],
        ('13_13_submission.csv', 'submission.csv (id,label), checked against '
                                 'sampleSubmission.csv'),
        ('train_loss', 'train_acc', 'valid_acc', 'examples_per_sec'))
    v = out['valid']
    rep.metric('chance_acc', 1 / len(out['synsets']))
    if run.tiny and not opts.get('data_dir'):  # the twin: its trivial baseline
        report_kaggle_baseline(rep, data_dir, v['valid_acc'])
    if 'final' in out:
        rep.metric('refit_train_loss', out['final']['train_loss'])
    rep.metric('submission_rows', out.get('submission_rows'))
    rep.note(f'ResNet-18 (13.13 variant) from scratch, SGD lr {lr} momentum 0.9 wd {wd}, '
             f'batch {batch_size}, {num_epochs} epochs on {run.devices}; data: '
             + (f'synthetic twin of kaggle_cifar10_tiny ({num_train} training PNGs, 5 test '
                'PNGs)' if run.tiny else data_dir)
             + ('. The submission comes from the net refit on train_valid.' if refit else
                '. No refit on train_valid (tiny budget): the submission comes from the '
                'validated net.'))
