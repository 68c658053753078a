import os
import subprocess
import sys

import numpy as onp

from d2lcv import plot


def test_animator_writes_png_outside_jupyter(tmp_path):
    path = tmp_path / 'curves' / 'a.png'
    anim = plot.Animator(xlabel='epoch', xlim=[0, 2], legend=['loss', 'acc'],
                         save_path=str(path), min_save_interval=3600)
    assert not anim.live
    anim.add(1, (0.5, None))
    first = path.read_bytes()  # the first point is written at once
    anim.add(2, (0.25, 0.75))
    assert path.read_bytes() == first  # throttled
    anim.flush()
    assert path.read_bytes() != first and path.stat().st_size > 1000
    assert anim.history == {'x': [[1.0, 2.0], [2.0]], 'y': [[0.5, 0.25], [0.75]],
                            'legend': ['loss', 'acc']}
    assert not [f for f in os.listdir(path.parent) if 'tmp' in f]
    anim.close()


def test_animator_default_path_uses_fig_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('D2LCV_FIG_DIR', str(tmp_path))
    anim = plot.Animator()
    anim.add(0, 1.0)
    assert (tmp_path / 'animator.png').exists()
    anim.close()


def test_plot_module_does_not_import_ipython():
    code = ('import sys, d2lcv.plot, d2lcv; '
            'print("IPython" in sys.modules, "ipykernel" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()), check=True)
    assert out.stdout.split() == ['False', 'False']


def test_show_images_grid():
    imgs = [onp.full((4, 5, 3), i * 20, dtype=onp.uint8) for i in range(5)]
    axes = plot.show_images(imgs, 2, 3, titles=list('abcde'))
    assert len(axes) == 6
    assert axes[4].get_title() == 'e'
    assert axes[0].images[0].get_array().shape == (4, 5, 3)
    plot.plt.close('all')


def test_set_figsize():
    plot.set_figsize((5, 4))
    assert list(plot.plt.rcParams['figure.figsize']) == [5, 4]
