"""The run report: header, contents, book comparisons, units, files; rendered in Chromium."""
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import types

import pytest

from d2lcv import cli, runs
from d2lcv.report import Report


QUICK_RCNN = ['--set', 'num_epochs=1', '--set', 'num_train=16', '--set', 'num_val=8',
              '--set', 'batch_size=8']


@pytest.fixture(autouse=True)
def _keep_env(monkeypatch):
    monkeypatch.delenv('D2LCV_TINY', raising=False)


@pytest.fixture(scope='module')
def small_run(tmp_path_factory):
    """A real run of four quick sections (13.3, 13.4, 13.8, 13.10) on the twins."""
    out = tmp_path_factory.mktemp('runs')
    saved = os.environ.pop('D2LCV_TINY', None), os.environ.pop('D2LCV_FIG_DIR', None)
    try:
        # 13.8 trains a Faster R-CNN: one epoch on 16 images keeps it quick
        assert cli.main(['run', '13.10', '13.3', 'anchors', '13.8', '--tiny', '--out',
                         str(out)] + QUICK_RCNN) == 0
    finally:
        for k, v in zip(('D2LCV_TINY', 'D2LCV_FIG_DIR'), saved):
            if v is not None:
                os.environ[k] = v
    (run_dir,) = glob.glob(str(out / '*'))
    return run_dir


def test_metrics_json_has_meta_first_then_chapter_order(small_run):
    with open(os.path.join(small_run, 'metrics.json')) as f:
        metrics = json.load(f)
    # asked for in the order 13.10, 13.3, 13.4, 13.8: written in chapter order
    assert list(metrics) == ['meta', '13.3', '13.4', '13.8', '13.10']
    meta = metrics['meta']
    assert meta['command'] == 'd2lcv run 13.10 13.3 anchors 13.8 --tiny --out ' + \
        os.path.dirname(small_run) + ' ' + ' '.join(QUICK_RCNN)
    assert meta['devices'] == 'cpu(0)' and meta['sections'] == '4 run, 0 failed'
    assert meta['data'].startswith('synthetic twins') and meta['total time'].endswith(' s')


def test_book_comparisons_match_where_the_book_prints_the_same_example(small_run):
    with open(os.path.join(small_run, 'metrics.json')) as f:
        metrics = json.load(f)
    book = metrics['13.4']['book']
    rows = book['multibox_detection output after NMS']
    assert rows['exact'] and rows['matches']
    assert rows['book'][1] == [1, 0.9, 0.55, 0.2, 0.9, 0.88]
    assert book['anchors for the 561x728 image (Y.shape[1])']['this_run'] == 2042040
    assert all(c['matches'] for s in ('13.4', '13.8', '13.10')
               for c in metrics[s]['book'].values())
    html = open(os.path.join(small_run, 'index.html')).read()
    assert html.count('matches the book') == sum(len(metrics[s]['book'])
                                                 for s in ('13.4', '13.8', '13.10'))
    assert 'book (real data, GPUs)' in html and '2,042,040' in html


def test_compare_marks_a_difference(tmp_path):
    rep = Report(str(tmp_path))
    rep.section('13.8', 'R-CNN')
    assert rep.compare('pooled', book=[[5, 6], [9, 10]], this_run=[[5, 6], [9, 11]],
                       exact=True) is False
    assert rep.compare('anchors', book=2042040, this_run=2042040, exact=True) is True
    assert rep.compare('accuracy', book=0.856, this_run=0.5, unit='fraction') is False
    html = open(rep.write()).read()
    assert html.count('DIFFERS from the book') == 1 and html.count('matches the book') == 1


def test_metrics_have_labels_and_units(tmp_path):
    rep = Report(str(tmp_path))
    rep.section('13.1', 'Augmentation')
    rep.metric('test_acc', 0.75)
    rep.metric('speed', 12.5, label='images per second', unit='images/s')
    html = open(rep.write()).read()
    assert re.search(r'<td>test accuracy</td><td class="num">0.75</td><td>fraction</td>', html)
    assert re.search(r'<td>images per second</td><td class="num">12.5</td>'
                     r'<td>images/s</td><td><code>speed</code>', html)


def test_every_file_is_linked_and_readable_by_others(tmp_path):
    rep = Report(str(tmp_path))
    rep.section('13.7', 'SSD')
    # what a training loop (or tempfile.mkstemp, 0600) leaves in the folder unlisted
    fd, tmp = tempfile.mkstemp(dir=str(tmp_path), prefix='13_7_training')
    os.close(fd)
    os.replace(tmp, tmp_path / '13_7_training.png')
    (tmp_path / 'animator.png').write_bytes(b'x')
    rep.attach('13_7_submission.csv', 'a CSV')
    fd, tmp = tempfile.mkstemp(dir=str(tmp_path))
    os.close(fd)
    os.replace(tmp, tmp_path / '13_7_submission.csv')
    html = open(rep.write()).read()
    for name in os.listdir(tmp_path):
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o644, (name, oct(mode))
        if name != 'index.html':
            assert f'href="{name}"' in html, name
    assert 'Also written by this section: <a href="13_7_training.png">' in html
    assert 'Other files of this run' in html


# --- the page in a real browser ------------------------------------------------------------

CHECK = """<script>
window.addEventListener('load', () => {
  const bad = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
      .map(i => i.getAttribute('src'));
  const toc = [...document.querySelectorAll('.toc a')].map(a => a.getAttribute('href'));
  const broken = toc.filter(h => !h.startsWith('#') || !document.getElementById(h.slice(1)));
  const pre = document.createElement('pre');
  pre.id = 'd2lcv-check';
  pre.textContent = JSON.stringify({images: document.images.length, bad: bad,
                                    toc: toc.length, broken: broken});
  document.body.appendChild(pre);
});
</script>"""


def _chromium():
    for name in ('chromium', 'chromium-browser'):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip('chromium is not installed (Debian: `apt-get install -y chromium`, which '
                '.ci/run does as root); the report is not rendered in a browser')


def _render(run_dir):
    """Open ``index.html`` (plus a checking script) in headless Chromium; its verdict."""
    page = os.path.join(run_dir, 'check.html')
    html = open(os.path.join(run_dir, 'index.html')).read()
    with open(page, 'w') as f:
        f.write(html.replace('</body>', CHECK + '</body>'))
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [_chromium(), '--headless', '--no-sandbox', '--disable-gpu',
             '--disable-background-networking', '--disable-component-update',
             '--disable-sync', '--no-first-run', f'--user-data-dir={profile}',
             '--virtual-time-budget=10000', '--dump-dom', 'file://' + page],
            capture_output=True, text=True, timeout=120)
    os.remove(page)
    m = re.search(r'<pre id="d2lcv-check">(.*?)</pre>', proc.stdout)
    assert m, f'no verdict from chromium (exit {proc.returncode}): {proc.stderr[-2000:]}'
    return json.loads(m.group(1).replace('&quot;', '"'))


def test_report_renders_in_chromium(small_run):
    verdict = _render(small_run)
    pngs = glob.glob(os.path.join(small_run, '*.png'))
    assert verdict == {'images': len(pngs), 'bad': [], 'toc': 4, 'broken': []}
    assert len(pngs) == 10


def test_chromium_check_catches_a_missing_image_and_a_dead_link(small_run, tmp_path):
    broken = tmp_path / 'broken'
    shutil.copytree(small_run, broken)
    os.remove(broken / '13_8_roi_pooling.png')
    html = (broken / 'index.html').read_text().replace('href="#s13-3"', 'href="#nowhere"')
    (broken / 'index.html').write_text(html)
    verdict = _render(str(broken))
    assert verdict['bad'] == ['13_8_roi_pooling.png'] and verdict['broken'] == ['#nowhere']


def test_failed_section_is_flagged_in_contents(tmp_path, monkeypatch):
    def boom(run):
        raise RuntimeError('no twin')
    fake = types.SimpleNamespace(NAME='fake', SECTION='13.99', TITLE='Fake', run=boom)
    monkeypatch.setattr(runs, 'sections', lambda: {'fake': fake})
    assert cli.main(['run', 'fake', '--out', str(tmp_path)]) == 1
    (run_dir,) = glob.glob(str(tmp_path / '*-fake'))
    html = open(os.path.join(run_dir, 'index.html')).read()
    assert '<li><a href="#s13-99">13.99 Fake</a> <span class="failed">(failed)</span></li>' \
        in html
