"""``import d2lcv as d2l`` offers exactly the names the chapter calls through ``d2l.`` and
one module per section; every other public name is in its module's ``__all__``."""
import ast
import importlib
import os
import pkgutil
import re
import subprocess
import sys
import types

import pytest

import d2lcv as d2l

HERE = os.path.dirname(os.path.abspath(__file__))
# The section modules and the book's shared helpers they build on (the flat namespace's
# second half; everything else is reached through one of them).
MODULES = ['devices', 'hub', 'plot', 'train', 'models', 'notebook', 'augment', 'finetune',
           'bbox', 'anchors', 'bananas', 'ssd', 'rcnn', 'segmentation', 'transconv', 'fcn',
           'style', 'kaggle']


def _chapter_names():
    with open(os.path.join(HERE, 'data', 'chapter_names.txt')) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def test_chapter_names_list_is_what_the_chapter_calls():
    # the committed list is the chapter's `d2l.` names (minus the d2l.ai URL), when the
    # chapter's text is at hand (it is not shipped with the tests: the project's shared
    # folder beside the checkout, or $D2LCV_CHAPTER_TEXT)
    candidates = [os.environ.get('D2LCV_CHAPTER_TEXT', '')] + [
        os.path.join(HERE, *['..'] * k, 'shared', 'chapter13.txt') for k in (2, 3)]
    found = [p for p in candidates if p and os.path.exists(p)]
    if not found:
        pytest.skip('chapter13.txt not here')
    chapter = found[0]
    with open(chapter) as f:
        called = set(re.findall(r'd2l\.([A-Za-z_][A-Za-z_0-9]*)', f.read())) - {'ai'}
    assert sorted(called) == _chapter_names()


def test_flat_namespace_is_exactly_the_chapter_names_and_the_modules():
    names = _chapter_names()
    assert len(names) == 29 and 'plt' in names and 'VOC_COLORMAP' in names
    assert d2l.__all__ == names + MODULES
    # what a reader sees: every public attribute that is not a module is a chapter name
    # (submodules Python binds on import, e.g. d2lcv.fsutil, are modules and not re-exports)
    public = sorted(n for n, v in vars(d2l).items()
                    if not n.startswith('_') and not isinstance(v, types.ModuleType))
    assert public == sorted(n for n in names if n != 'plt')  # plt is matplotlib.pyplot
    others = [n for n, v in vars(d2l).items() if isinstance(v, types.ModuleType)
              and not n.startswith('_') and n not in MODULES + ['plt']]
    assert all(getattr(d2l, n).__name__ == f'd2lcv.{n}' for n in others), others
    for m in MODULES:
        assert isinstance(getattr(d2l, m), types.ModuleType), m
        assert getattr(d2l, m).__name__ == f'd2lcv.{m}'
    # the chapter's names are the functions of their modules, not copies
    assert d2l.VOC_COLORMAP is d2l.segmentation.VOC_COLORMAP
    assert d2l.train_ch13 is d2l.train.train_ch13


def test_removed_flat_names_are_reached_through_their_module():
    assert not hasattr(d2l, 'multibox_prior') and d2l.anchors.multibox_prior
    assert not hasattr(d2l, 'predict')  # fcn.predict and ssd.predict alike
    assert d2l.fcn.predict is not d2l.ssd.predict


def _public_modules():
    """Every module but the command line itself (cli) and the private _x modules."""
    names = ['d2lcv']
    for info in pkgutil.walk_packages(d2l.__path__, 'd2lcv.'):
        parts = info.name.split('.')[1:]
        if any(p.startswith('_') for p in parts) or parts[0] == 'cli':
            continue
        names.append(info.name)
    return names


@pytest.mark.parametrize('name', _public_modules())
def test_every_public_module_lists_its_public_names(name):
    """``__all__`` is the public list: every name in it exists, and every top-level function,
    class or constant without a leading underscore defined in the module is in it."""
    mod = importlib.import_module(name)
    assert isinstance(mod.__all__, list)
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, missing
    if name == 'd2lcv':
        return
    with open(mod.__file__) as f:
        tree = ast.parse(f.read())
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
    unlisted = sorted(n for n in defined if not n.startswith('_') and n not in mod.__all__)
    assert not unlisted, f'{name}: public but not in __all__: {unlisted}'


def test_error_classes_are_public_where_their_module_is():
    from d2lcv import bananas, hub, imagecheck, kaggle, models, segmentation, weights
    from d2lcv.dist import launch
    for mod, err in [(bananas, 'BananasDataError'), (hub, 'DownloadError'),
                     (kaggle, 'KaggleDataError'), (kaggle.reorg, 'KaggleDataError'),
                     (launch, 'LaunchError'),
                     (weights, 'PretrainedWeightsMissing'), (weights, 'TorchFileError'),
                     (segmentation, 'VOCFormatError'), (imagecheck, 'ImageDataError'),
                     # re-exported where it is raised: get_pretrained
                     (models, 'PretrainedWeightsMissing')]:
        assert err in mod.__all__ and issubclass(getattr(mod, err), Exception)


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
