"""Run reports: figures (PNG), ``metrics.json`` and an ``index.html`` in one folder.

``d2lcv run SECTION`` gives each section a :class:`Report`; the section adds figures,
metrics and comparisons with the book, and the report is written (atomically, file by
file) when the run ends. The page opens with the run's metadata (date, version, command,
devices, total time) and a table of contents; each section shows

* a "book (real data, GPUs)" vs "this run" table for what the book prints
  (:meth:`Report.compare`), with a "matches the book" mark where the run reproduces the
  book's printed output exactly;
* its metrics with readable labels and units (:data:`METRIC_LABELS`, or ``label=`` /
  ``unit=`` in :meth:`Report.metric`);
* its figures at their own size (scaled down only to the page width; click to enlarge).

Files the section's code wrote into the run folder without listing them (a training
loop's progress PNG, say) are linked under "also written", so the folder holds only this
run's files and the page links every one of them. Every file is made readable by others
(0644). ``metrics.json`` holds ``meta`` first, then the sections in chapter order.
"""
import datetime
import html
import json
import os

from .plot import plt, savefig

__all__ = ['Report', 'new_run_dir', 'METRIC_LABELS']

#: metric key -> (label, unit) for the keys sections commonly use; a key not listed is shown
#: with underscores as spaces and no unit (or the label/unit passed to ``metric``).
METRIC_LABELS = {
    'seconds': ('section time', 's'),
    'train_loss': ('training loss (last epoch)', 'per example'),
    'train_acc': ('training accuracy (last epoch)', 'fraction'),
    'test_acc': ('test accuracy', 'fraction'),
    'valid_acc': ('validation accuracy', 'fraction'),
    'valid_loss': ('validation loss', 'per example'),
    'examples_per_sec': ('throughput', 'examples/s'),
    'epochs_run': ('epochs run', 'epochs'),
    'epochs': ('epochs', 'epochs'),
    'chance_acc': ('chance accuracy (1 / classes)', 'fraction'),
    'chance_loss': ('chance loss (log classes)', 'per example'),
    'class_err': ('class error (training)', 'fraction'),
    'bbox_mae': ('bounding box MAE (training)', 'image fraction'),
    'val_map50': ('validation mAP@0.5 (COCO 101-point)', 'fraction'),
    'val_map50_voc': ('validation mAP@0.5 (VOC all-point)', 'fraction'),
    'val_map_0.5:0.95': ('validation mAP@[0.5:0.95]', 'fraction'),
    'train_minutes': ('training time', 'min'),
    'num_anchors': ('anchors for the 561x728 image', 'boxes'),
    'image_height': ('image height', 'px'),
    'image_width': ('image width', 'px'),
    'submission_rows': ('submission rows', 'rows'),
    'finetune_minus_scratch': ('test accuracy, fine-tuned minus scratch', 'fraction'),
    'val_whole_image_pixel_acc': ('whole-image pixel accuracy (validation)', 'fraction'),
    'val_whole_image_miou': ('whole-image mean IoU (validation)', 'fraction'),
}


#: unit by the key's form, for keys METRIC_LABELS does not list (first match wins)
_UNIT_RULES = (('style_loss', 'weighted'), ('content_loss', 'weighted'),
               ('tv_loss', 'weighted'), ('_acc', 'fraction'),
               ('_acc_mean_over_epochs', 'fraction'),
               ('_fraction', 'fraction'), ('_miou', 'fraction'), ('_loss', 'per example'),
               ('_diff_vs_npx', 'absolute'), ('_diff_vs_mxnet', 'absolute'),
               ('_ms_', 'ms'), ('_minutes', 'min'), ('_seconds', 's'),
               ('num_anchors', 'boxes'), ('_images', 'images'), ('_examples', 'examples'),
               ('_rows', 'rows'), ('_per_label', 'images'))


def _label_unit(key):
    """``(label, unit)`` for a metric key: METRIC_LABELS, else readable words and a unit
    inferred from the key (``finetune_test_acc`` -> ``finetune test acc``, fraction)."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    unit = next((u for pattern, u in _UNIT_RULES
                 if pattern in key or key.endswith(pattern.strip('_'))), '')
    return key.replace('_', ' '), unit


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
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _section_key(sec_id):
    try:
        return (0, tuple(int(p) for p in sec_id.split('.')))
    except ValueError:  # '' (the run itself) or a free-form id: after the numbered ones
        return (1, (sec_id,))


def _anchor(sec_id):
    return 's' + (sec_id.replace('.', '-') or 'run')


def _same(a, b, tol):
    """Whether two printed values agree: numbers within ``tol``, lists element by element."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tol
    return a == b


def _fmt(v):
    if isinstance(v, (list, tuple)):  # printed arrays: 1.0 -> 1, as the book prints them
        return '[' + ', '.join(f'{x:g}' if isinstance(x, float) else _fmt(x) for x in v) + ']'
    if isinstance(v, bool):
        return 'yes' if v else 'no'
    if isinstance(v, float):
        return f'{v:.4g}'
    if isinstance(v, int):
        return f'{v:,}' if abs(v) >= 10000 else str(v)
    return str(v)


class Report:
    """Collects one run's figures, metrics, book comparisons and notes, section by section.

    >>> rep = Report('runs/x'); rep.section('13.1', 'Image augmentation')
    >>> rep.metric('test_acc', 0.5); rep.figure('flips', fig, 'Random flips')
    >>> rep.compare('test accuracy', book=0.856, this_run=0.5, unit='fraction')
    """

    def __init__(self, out_dir, title='d2lcv report', meta=None):
        self.out_dir = out_dir
        self.title = title
        #: run metadata shown in the header and stored in metrics.json (ordered dict)
        self.meta = dict(meta or {})
        os.makedirs(out_dir, exist_ok=True)
        self.sections = []  # dicts: id, title, figures, metrics, notes, book, labels

    @property
    def current(self):
        if not self.sections:
            self.section('', self.title)
        return self.sections[-1]

    def section(self, sec_id, title):
        self.sections.append({'id': sec_id, 'title': title, 'figures': [], 'metrics': {},
                              'notes': [], 'status': 'ok', 'book': [], 'labels': {}})
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

    def metric(self, key, value, label=None, unit=None):
        """Record ``value`` under ``key`` (metrics.json); ``label``/``unit`` for the page."""
        if hasattr(value, 'item'):
            value = value.item()
        self.current['metrics'][key] = value
        if label is not None or unit is not None:
            self.current['labels'][key] = (label, unit)

    def compare(self, label, book, this_run, unit='', exact=False, tol=1e-6, note=''):
        """A number (or printed array, as nested lists) the book prints, next to this run's.

        ``exact=True`` marks an output the section reproduces exactly (the same example
        as the book): the row shows "matches the book" when ``this_run`` equals ``book``
        (numbers within ``tol``) and "DIFFERS from the book" otherwise. Without ``exact``
        the values come from different data or budgets (trained models on the twins) and
        are shown side by side only. Returns whether they match.
        """
        if hasattr(this_run, 'tolist'):
            this_run = this_run.tolist()
        match = _same(book, this_run, tol)
        self.current['book'].append({'label': label, 'book': book, 'this_run': this_run,
                                     'unit': unit, 'exact': bool(exact),
                                     'matches': bool(match), 'note': note})
        return match

    def note(self, text):
        self.current['notes'].append(text)

    def fail(self, error):
        self.current['status'] = 'failed'
        self.current['notes'].append(f'FAILED: {error}')

    # -- writing ---------------------------------------------------------------------------

    def _ordered(self):
        return sorted(self.sections, key=lambda s: _section_key(s['id']))

    def _listed(self):
        return {f['file'] for s in self.sections for f in s['figures']}

    def _unlisted(self):
        """Files in the run folder that no section lists, by section prefix ('' = none)."""
        listed = self._listed() | {'index.html', 'metrics.json'}
        out = {}
        prefixes = {s['id'].replace('.', '_') + '_': s['id'] for s in self.sections
                    if s['id']}
        for name in sorted(os.listdir(self.out_dir)):
            if name in listed or name.endswith('.tmp') or '.tmp' in name or \
                    not os.path.isfile(self.path(name)):
                continue
            owner = next((sec for p, sec in prefixes.items() if name.startswith(p)), '')
            out.setdefault(owner, []).append(name)
        return out

    def write(self):
        sections = self._ordered()
        metrics = {'meta': self.meta}
        for s in sections:
            entry = dict(s['metrics'], status=s['status'], title=s['title'])
            if s['book']:
                entry['book'] = {c['label']: {k: c[k] for k in ('book', 'this_run', 'unit',
                                                                  'exact', 'matches')}
                                 for c in s['book']}
            metrics[s['id'] or 'run'] = entry
        _write_text(self.path('metrics.json'), json.dumps(metrics, indent=2, default=str))
        index = self.path('index.html')
        _write_text(index, self._html(sections, self._unlisted()))
        # a section's own files (tempfile.mkstemp makes 0600) must be readable by others too
        for name in os.listdir(self.out_dir):
            if os.path.isfile(self.path(name)) and '.tmp' not in name:
                os.chmod(self.path(name), 0o644)
        return index

    def _html(self, sections, unlisted):
        e = html.escape
        parts = [
            f'<!doctype html><html><head><meta charset="utf-8"><title>{e(self.title)}</title>'
            '<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 12px}'
            'figure{display:inline-block;margin:8px;vertical-align:top;max-width:100%}'
            'figure img{max-width:100%;height:auto;border:1px solid #eee}'
            'figcaption{font-size:90%;max-width:900px}'
            'table{border-collapse:collapse;margin:6px 0}'
            'td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}'
            'td.num{text-align:right;font-family:monospace}code{font-size:90%}'
            '.failed{color:#b00}.match{color:#070;font-weight:bold}'
            '.differs{color:#b00;font-weight:bold}.meta th{background:#f4f4f4}'
            '</style></head><body>', f'<h1>{e(self.title)}</h1>',
            '<p>Every number below is also in <a href="metrics.json">metrics.json</a>; '
            'click a figure to see it at full size.</p>']
        if self.meta:
            parts.append('<table class="meta">')
            for k, v in self.meta.items():
                parts.append(f'<tr><th>{e(str(k))}</th><td>{e(_fmt(v))}</td></tr>')
            parts.append('</table>')
        parts.append('<h2>Contents</h2><ol class="toc">')
        for s in sections:
            bad = ' <span class="failed">(failed)</span>' if s['status'] != 'ok' else ''
            parts.append(f'<li><a href="#{_anchor(s["id"])}">{e(s["id"])} {e(s["title"])}'
                         f'</a>{bad}</li>')
        parts.append('</ol>')
        for s in sections:
            cls = ' class="failed"' if s['status'] != 'ok' else ''
            parts.append(f'<h2 id="{_anchor(s["id"])}"{cls}>{e(s["id"])} {e(s["title"])}</h2>')
            for n in s['notes']:
                parts.append(f'<p>{e(n)}</p>')
            if s['book']:
                parts.append('<table><tr><th>printed in the book</th><th>book (real data, '
                             'GPUs)</th><th>this run</th><th>unit</th><th></th></tr>')
                for c in s['book']:
                    mark = ''
                    if c['exact']:
                        mark = ('<span class="match">&#10003; matches the book</span>'
                                if c['matches'] else
                                '<span class="differs">DIFFERS from the book</span>')
                    elif c['note']:
                        mark = e(c['note'])
                    parts.append(f'<tr><td>{e(c["label"])}</td>'
                                 f'<td class="num">{e(_fmt(c["book"]))}</td>'
                                 f'<td class="num">{e(_fmt(c["this_run"]))}</td>'
                                 f'<td>{e(c["unit"] or "")}</td><td>{mark}</td></tr>')
                parts.append('</table>')
            if s['metrics']:
                parts.append('<table><tr><th>metric</th><th>value</th><th>unit</th>'
                             '<th>key in metrics.json</th></tr>')
                for k, v in s['metrics'].items():
                    label, unit = _label_unit(k)
                    own_label, own_unit = s['labels'].get(k, (None, None))
                    label = own_label or label
                    unit = own_unit if own_unit is not None else unit
                    parts.append(f'<tr><td>{e(label)}</td><td class="num">{e(_fmt(v))}</td>'
                                 f'<td>{e(unit)}</td><td><code>{e(k)}</code></td></tr>')
                parts.append('</table>')
            for f in s['figures']:
                name = e(f['file'])
                if f['file'].lower().endswith(('.png', '.jpg', '.svg')):
                    parts.append(f'<figure><a href="{name}" title="click to enlarge">'
                                 f'<img src="{name}" alt="{name}"></a>'
                                 f'<figcaption>{e(f["caption"])}</figcaption></figure>')
                else:
                    parts.append(f'<p><a href="{name}">{name}</a> {e(f["caption"])}</p>')
            extra = unlisted.get(s['id'], []) if s['id'] else []
            if extra:
                parts.append('<p>Also written by this section: ' + ', '.join(
                    f'<a href="{e(n)}">{e(n)}</a>' for n in extra) + '</p>')
        if unlisted.get(''):
            parts.append('<h2 id="other-files">Other files of this run</h2><p>' + ', '.join(
                f'<a href="{e(n)}">{e(n)}</a>' for n in unlisted['']) + '</p>')
        parts.append('</body></html>')
        return '\n'.join(parts)
