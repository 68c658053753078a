"""``import d2lcv as d2l`` offers every name the chapter calls through ``d2l.``."""
import subprocess
import sys

import d2lcv as d2l

CHAPTER_NAMES = [
    'try_gpu', 'try_all_gpus', 'split_batch', 'train_ch13', 'train_batch_ch13',
    'evaluate_accuracy_gpus', 'get_dataloader_workers', 'Animator', 'Timer', 'Accumulator',
    'plt', 'set_figsize', 'show_images', 'download', 'download_extract', 'DATA_HUB',
    'DATA_URL', 'mkdir_if_not_exist', 'corr2d', 'resnet18', 'load_cifar10', 'apply',
]


def test_chapter_names_exist():
    missing = [n for n in CHAPTER_NAMES if not hasattr(d2l, n)]
    assert not missing


def test_default_devices_resolved_at_call_time():
    import inspect
    assert inspect.signature(d2l.train_ch13).parameters['devices'].default is None


def test_import_is_quiet():
    # mxnet's own DeprecationWarnings are filtered, nothing else is printed
    out = subprocess.run([sys.executable, '-W', 'default', '-c', 'import d2lcv'],
                         capture_output=True, text=True, check=True)
    assert 'DeprecationWarning' not in out.stderr, out.stderr
    assert out.stdout == ''


def test_missing_mxnet_says_which_extra_to_install():
    code = ('import sys; sys.modules["mxnet"] = None\n'
            'try:\n    import d2lcv\nexcept ImportError as e:\n    print(e)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert 'd2lcv[cpu]' in out and 'd2lcv[gpu]' in out and 'mxnet-cu112==1.9.1' in out
