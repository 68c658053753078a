"""Run reports: figures (PNG), ``metrics.json`` and an ``index.html`` in one folder.

``d2lcv run SECTION`` gives each section a :class:`Report`; the section adds figures and
metrics, and the report is written (atomically, file by file) when the run ends.
"""
import datetime
import html
import json
import os

from .plot import plt, savefig

__all__ = ['Report', 'new_run_dir']


def new_run_dir(base='runs', name='run'):
    """``runs/<YYYYmmdd-HHMMSS>-<name>``, made unique if it exists already."""
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    path = os.path.join(base, f'{stamp}-{name}')
    i = 1
    while os.path.exists(path):
        i += 1
        path = os.path.join(base, f'{stamp}-{name}-{i}')
    os.makedirs(path)
    return path


def _write_text(path, text):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)
    os.replace(tmp, path)


class Report:
    """Collects one run's figures, metrics and notes, section by section.

    >>> rep = Report('runs/x'); rep.section('13.1', 'Image augmentation')
    >>> rep.metric('test_acc', 0.5); rep.figure('flips', fig, 'Random flips')
    """

    def __init__(self, out_dir, title='d2lcv report'):
        self.out_dir = out_dir
        self.title = title
        os.makedirs(out_dir, exist_ok=True)
        self.sections = []  # dicts: id, title, figures, metrics, notes

    @property
    def current(self):
        if not self.sections:
            self.section('', self.title)
        return self.sections[-1]

    def section(self, sec_id, title):
        self.sections.append({'id': sec_id, 'title': title, 'figures': [], 'metrics': {},
                              'notes': [], 'status': 'ok'})
        return self

    def path(self, name):
        """A path inside the run folder, for files a section writes itself."""
        return os.path.join(self.out_dir, name)

    def figure(self, name, fig=None, caption=''):
        """Save ``fig`` (default: current figure) as ``<section>_<name>.png`` and close it."""
        fig = fig or plt.gcf()
        prefix = self.current['id'].replace('.', '_')
        fname = f'{prefix}_{name}.png' if prefix else f'{name}.png'
        savefig(os.path.join(self.out_dir, fname), fig)
        plt.close(fig)
        self.current['figures'].append({'file': fname, 'caption': caption})
        return fname

    def attach(self, fname, caption=''):
        """List a file the section wrote into the run folder itself (a PNG, a CSV...)."""
        self.current['figures'].append({'file': fname, 'caption': caption})

    def metric(self, key, value):
        if hasattr(value, 'item'):
            value = value.item()
        self.current['metrics'][key] = value

    def note(self, text):
        self.current['notes'].append(text)

    def fail(self, error):
        self.current['status'] = 'failed'
        self.current['notes'].append(f'FAILED: {error}')

    def write(self):
        metrics = {s['id'] or 'run': dict(s['metrics'], status=s['status'], title=s['title'])
                   for s in self.sections}
        _write_text(os.path.join(self.out_dir, 'metrics.json'),
                    json.dumps(metrics, indent=2, sort_keys=True, default=str))
        _write_text(os.path.join(self.out_dir, 'index.html'), self._html())
        return os.path.join(self.out_dir, 'index.html')

    def _html(self):
        e = html.escape
        parts = [f'<!doctype html><html><head><meta charset="utf-8"><title>{e(self.title)}'
                 '</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}'
                 'figure{display:inline-block;margin:8px;vertical-align:top}'
                 'img{max-width:520px}table{border-collapse:collapse}'
                 'td,th{border:1px solid #ccc;padding:2px 8px}.failed{color:#b00}</style>'
                 f'</head><body><h1>{e(self.title)}</h1>']
        for s in self.sections:
            cls = ' class="failed"' if s['status'] != 'ok' else ''
            parts.append(f'<h2{cls}>{e(s["id"])} {e(s["title"])}</h2>')
            for n in s['notes']:
                parts.append(f'<p>{e(n)}</p>')
            if s['metrics']:
                parts.append('<table><tr><th>metric</th><th>value</th></tr>')
                for k, v in s['metrics'].items():
                    v = f'{v:.4g}' if isinstance(v, float) else str(v)
                    parts.append(f'<tr><td>{e(k)}</td><td>{e(v)}</td></tr>')
                parts.append('</table>')
            for f in s['figures']:
                if f['file'].lower().endswith(('.png', '.jpg', '.svg')):
                    parts.append(f'<figure><img src="{e(f["file"])}"><figcaption>'
                                 f'{e(f["caption"])}</figcaption></figure>')
                else:
                    parts.append(f'<p><a href="{e(f["file"])}">{e(f["file"])}</a> '
                                 f'{e(f["caption"])}</p>')
        parts.append('</body></html>')
        return '\n'.join(parts)
