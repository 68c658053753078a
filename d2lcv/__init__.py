"""d2lcv: the MXNet/Gluon companion library for *Dive into Deep Learning*, chapter 13.

``import d2lcv as d2l`` gives every helper the chapter calls through ``d2l.`` by its book
name, so the chapter's code cells run with ``d2l`` bound to ``d2lcv``. This file only
re-exports; each section lives in its own module (see the README's table).
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

from .devices import try_gpu, try_all_gpus, split_batch, resolve_devices  # noqa: E402
from .hub import (DATA_HUB, DATA_URL, download, download_extract, mkdir_if_not_exist,  # noqa
                  synth_twin, is_tiny, data_dir)
from .notebook import setup  # noqa: E402
from .plot import plt, use_svg_display, set_figsize, set_axes, show_images, Animator  # noqa
from .train import (Timer, Accumulator, accuracy, evaluate_accuracy_gpus,  # noqa: E402
                    train_batch_ch13, train_ch13, get_dataloader_workers, corr2d)
from .models import Residual, resnet18  # noqa: E402
from .models import get_pretrained, import_weights, PretrainedWeightsMissing  # noqa: E402
from .augment import apply, load_cifar10, train_with_data_aug, img_path  # noqa: E402
from .finetune import (load_hotdog, hotdog_datasets, make_finetune_net,  # noqa: E402
                       freeze_features, train_fine_tuning, compare_finetune_scratch)
from .style import (preprocess, postprocess, extract_features, get_contents,  # noqa: E402
                    get_styles, content_loss, gram, style_loss, tv_loss, compute_loss,
                    GeneratedImage, get_inits, style_transfer, load_vgg19)
from .bbox import (bbox_to_rect, box_corner_to_center, box_center_to_corner,  # noqa: E402
                   show_bboxes, read_image, DOG_BBOX, CAT_BBOX)
from .anchors import (multibox_prior, box_iou, assign_anchor_to_bbox, offset_boxes,  # noqa
                      offset_inverse, multibox_target, nms, multibox_detection,
                      display_anchors)
from .rcnn import roi_pool, roi_align  # noqa: E402
from .segmentation import (VOC_COLORMAP, VOC_CLASSES, IGNORE_LABEL, read_voc_images,  # noqa
                           build_colormap2label, voc_colormap2label, voc_label_indices,
                           voc_rand_crop, VOCSegDataset, load_data_voc, segmentation_confusion,
                           pixel_accuracy, mean_iou)
from .transconv import trans_conv, kernel2matrix  # noqa: E402
from .fcn import (bilinear_kernel, fcn_net, SegmentationLoss, train_fcn, predict,  # noqa
                  label2image, predict_whole, evaluate_voc)
from .bananas import (load_data_bananas, read_data_bananas, BananasDataset,  # noqa: E402
                      load_data_bananas_csv)
from .ssd import (cls_predictor, bbox_predictor, flatten_pred, concat_preds,  # noqa: E402
                  down_sample_blk, base_net, get_blk, blk_forward, TinySSD, calc_loss,
                  cls_eval, bbox_eval, SSDLoss, train_ssd)
from .detection_metrics import mean_average_precision  # noqa: E402
from .kaggle import (read_csv_labels, copyfile, reorg_train_valid, reorg_test,  # noqa: E402
                     reorg_cifar10_data, reorg_dog_data, transform_train_cifar10,
                     transform_test_cifar10, transform_train_dog, transform_test_dog,
                     read_image_folders, kaggle_loaders, get_net_cifar10, train_cifar10,
                     small_features, get_net_dog, evaluate_loss, train_dog, image_ids,
                     predict_labels, predict_probs, write_cifar10_submission,
                     write_dog_submission, check_submission, kaggle_cifar10, kaggle_dog)

__version__ = '0.1.0'
