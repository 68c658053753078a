"""d2lcv: the MXNet/Gluon companion library for *Dive into Deep Learning*, chapter 13.

``import d2lcv as d2l`` gives exactly the names the chapter calls through ``d2l.`` (by their
book names, so the chapter's code cells run with ``d2l`` bound to ``d2lcv``) and one module
per section; everything else is reached through its module, whose ``__all__`` lists it:
``d2l.anchors.multibox_prior``, ``d2l.ssd.TinySSD``, ``d2l.notebook.setup()``...
(tests/data/chapter_names.txt is the list, extracted from the chapter; tests/test_init.py
checks it.)
"""
import warnings as _warnings

# MXNet 1.9.1 raises DeprecationWarnings from its own modules on import (numpy aliases,
# distutils...). They are MXNet's, not the user's: silence exactly those.
_warnings.filterwarnings('ignore', category=DeprecationWarning, module=r'mxnet(\..*)?$')

try:
    import mxnet as _mx  # noqa: F401
except ImportError as _e:  # pragma: no cover - exercised only without mxnet
    raise ImportError(
        'd2lcv needs MXNet 1.9.1, and it is not importable here '
        f'({_e}). Install exactly one build: `pip install "d2lcv[cpu]"` (CPU, mxnet==1.9.1) '
        'or `pip install "d2lcv[gpu]"` (CUDA 11.2, mxnet-cu112==1.9.1).') from _e

from mxnet import npx as _npx

_npx.set_np()

# The chapter's `d2l.` names (tests/data/chapter_names.txt), from the module each lives in.
from .devices import try_gpu, try_all_gpus, split_batch  # noqa: E402
from .hub import DATA_HUB, DATA_URL, download_extract, mkdir_if_not_exist  # noqa: E402
from .plot import plt, set_figsize, show_images, Animator  # noqa: E402
from .train import (Timer, Accumulator, accuracy, evaluate_accuracy_gpus,  # noqa: E402
                    train_batch_ch13, train_ch13, get_dataloader_workers, corr2d)
from .models import resnet18  # noqa: E402
from .bbox import bbox_to_rect, show_bboxes  # noqa: E402
from .bananas import load_data_bananas  # noqa: E402
from .segmentation import VOC_COLORMAP, read_voc_images, load_data_voc  # noqa: E402
from .kaggle import read_csv_labels, reorg_train_valid, reorg_test  # noqa: E402

# One module per section (13.1-13.14) and the book's shared helpers they build on.
from . import (devices, hub, plot, train, models, notebook,  # noqa: E402
               augment, finetune, bbox, anchors, bananas, ssd, rcnn, segmentation,
               transconv, fcn, style, kaggle)

__all__ = [  # the chapter's names, then the modules
    'Accumulator', 'Animator', 'DATA_HUB', 'DATA_URL', 'Timer', 'VOC_COLORMAP', 'accuracy',
    'bbox_to_rect', 'corr2d', 'download_extract', 'evaluate_accuracy_gpus',
    'get_dataloader_workers', 'load_data_bananas', 'load_data_voc', 'mkdir_if_not_exist', 'plt',
    'read_csv_labels', 'read_voc_images', 'reorg_test', 'reorg_train_valid', 'resnet18',
    'set_figsize', 'show_bboxes', 'show_images', 'split_batch', 'train_batch_ch13', 'train_ch13',
    'try_all_gpus', 'try_gpu',
    'devices', 'hub', 'plot', 'train', 'models', 'notebook', 'augment', 'finetune', 'bbox',
    'anchors', 'bananas', 'ssd', 'rcnn', 'segmentation', 'transconv', 'fcn', 'style', 'kaggle']

__version__ = '0.1.0'
