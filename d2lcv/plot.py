"""Plotting: ``plt``, ``set_figsize``, ``show_images`` and the ``Animator``.

Nothing here imports IPython at load time. Inside a Jupyter kernel the Animator redraws in
place; anywhere else (a script, a test, CI) it writes its figure to a PNG file instead, and
matplotlib uses the non-interactive Agg backend when no display is available.
"""
import os
import sys
import time

import matplotlib

if 'ipykernel' not in sys.modules and not os.environ.get('DISPLAY') \
        and not os.environ.get('MPLBACKEND'):
    matplotlib.use('Agg')
from matplotlib import pyplot as plt  # noqa: E402

__all__ = ['plt', 'use_svg_display', 'set_figsize', 'set_axes', 'show_images', 'Animator',
           'in_notebook', 'savefig']


def in_notebook():
    """True inside a Jupyter kernel (checked without importing IPython)."""
    shell = sys.modules.get('IPython')
    if shell is None or 'ipykernel' not in sys.modules:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == 'ZMQInteractiveShell'


def use_svg_display():
    """Use the svg format to display a plot in Jupyter (a no-op elsewhere)."""
    if in_notebook():
        from matplotlib_inline import backend_inline
        backend_inline.set_matplotlib_formats('svg')


def set_figsize(figsize=(3.5, 2.5)):
    """Set the figure size for matplotlib."""
    use_svg_display()
    plt.rcParams['figure.figsize'] = figsize


def set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend):
    """Set the axes for matplotlib."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xscale(xscale)
    axes.set_yscale(yscale)
    axes.set_xlim(xlim)
    axes.set_ylim(ylim)
    if legend:
        axes.legend(legend)
    axes.grid()


def _to_numpy(img):
    if hasattr(img, 'asnumpy'):
        return img.asnumpy()
    return img


def show_images(imgs, num_rows, num_cols, titles=None, scale=1.5):
    """Plot a grid of images; return the flat array of axes.

    ``imgs``: a sequence (or array) of ``(H, W)`` or ``(H, W, C)`` images, MXNet or NumPy;
    uint8 or floats in [0, 1].
    """
    figsize = (num_cols * scale, num_rows * scale)
    _, axes = plt.subplots(num_rows, num_cols, figsize=figsize, squeeze=False)
    axes = axes.flatten()
    for i, (ax, img) in enumerate(zip(axes, imgs)):
        img = _to_numpy(img)
        if img.dtype.kind == 'f' and img.max() > 1.0 + 1e-6:
            img = img.clip(0, 255).astype('uint8')
        ax.imshow(img)
        ax.axes.get_xaxis().set_visible(False)
        ax.axes.get_yaxis().set_visible(False)
        if titles:
            ax.set_title(titles[i])
    return axes


def savefig(path, fig=None, dpi=100):
    """Save ``fig`` (default: the current figure) as a PNG, atomically; return ``path``."""
    fig = fig or plt.gcf()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f'{root}.tmp{os.getpid()}{ext or ".png"}'
    fig.savefig(tmp, dpi=dpi, bbox_inches='tight')
    os.replace(tmp, path)
    return path


class Animator:
    """Plot data incrementally (the chapter's signature, plus ``save_path``).

    In Jupyter the figure redraws in place. Elsewhere every ``add`` rewrites the PNG at
    ``save_path`` (default ``$D2LCV_FIG_DIR/animator.png``, ``D2LCV_FIG_DIR`` defaulting to
    the working directory), so a script shows its progress in a file it can be watched in.
    ``history`` keeps every point added, for reports and checkpoints. Writing a PNG costs
    ~0.1 s, so the file is rewritten at most every ``min_save_interval`` seconds; ``flush()``
    writes whatever is pending (``train_ch13`` calls it after every epoch).
    """

    def __init__(self, xlabel=None, ylabel=None, legend=None, xlim=None, ylim=None,
                 xscale='linear', yscale='linear', fmts=('-', 'm--', 'g-.', 'r:'),
                 nrows=1, ncols=1, figsize=(3.5, 2.5), save_path=None, min_save_interval=2.0):
        if legend is None:
            legend = []
        use_svg_display()
        self.fig, self.axes = plt.subplots(nrows, ncols, figsize=figsize)
        if nrows * ncols == 1:
            self.axes = [self.axes, ]
        self.config_axes = lambda: set_axes(self.axes[0], xlabel, ylabel, xlim, ylim,
                                            xscale, yscale, legend)
        self.X, self.Y, self.fmts = None, None, fmts
        self.legend = list(legend)
        self.live = in_notebook()
        if save_path is None and not self.live:
            save_path = os.path.join(os.environ.get('D2LCV_FIG_DIR', '.'), 'animator.png')
        self.save_path = save_path
        self.min_save_interval = min_save_interval
        self._display = None
        self._last_save = None
        self._dirty = False

    @property
    def history(self):
        """``{'x': [[...] per line], 'y': [[...] per line], 'legend': [...]}``."""
        return {'x': self.X or [], 'y': self.Y or [], 'legend': self.legend}

    def add(self, x, y):
        """Add one point per line; ``None`` skips a line at this x."""
        if not hasattr(y, '__len__'):
            y = [y]
        n = len(y)
        if not hasattr(x, '__len__'):
            x = [x] * n
        if not self.X:
            self.X = [[] for _ in range(n)]
        if not self.Y:
            self.Y = [[] for _ in range(n)]
        for i, (a, b) in enumerate(zip(x, y)):
            if a is not None and b is not None:
                self.X[i].append(float(a))
                self.Y[i].append(float(b))
        self.draw()

    def draw(self):
        self.axes[0].cla()
        for x, y, fmt in zip(self.X or [], self.Y or [], self.fmts):
            self.axes[0].plot(x, y, fmt)
        self.config_axes()
        if self.live:
            from IPython import display
            if self._display is None:
                self._display = display.display(self.fig, display_id=True)
            else:
                self._display.update(self.fig)
        if self.save_path:
            self._dirty = True
            now = time.monotonic()
            if self._last_save is None or now - self._last_save >= self.min_save_interval:
                self.flush()

    def flush(self):
        """Write the PNG now if points were added since the last write."""
        if self.save_path and self._dirty:
            savefig(self.save_path, self.fig)
            self._last_save = time.monotonic()
            self._dirty = False

    def close(self):
        self.flush()
        plt.close(self.fig)
