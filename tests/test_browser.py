"""The report in a real browser: headless Chromium loads it from disk with no console errors
and every image decodes. Skips when Chromium is not installed (.ci/run installs it)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from datakit.report.html import write_report
from fake_runs import LONG_ARM_NAMES, fake_audit, fake_study, make_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Injected first in <head> of a copy of the page: records script errors, failed resources
#: and console errors, then, once the page has loaded, every image's decoded width.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t.tagName ? 'failed to load ' + t.tagName + ' ' + String(t.src || t.href).slice(0, 60)
                                      : 'script error: ' + e.message);
}, true);
var _ce = console.error;
console.error = function () { window.__errors.push('console.error: ' + Array.from(arguments).join(' ')); _ce.apply(console, arguments); };
window.addEventListener('load', function () {
  var imgs = Array.from(document.images).map(function (i) { return {w: i.naturalWidth, ok: i.complete}; });
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  var overflow = Array.from(document.querySelectorAll('.wide')).filter(function (w) {
    return w.scrollWidth > w.clientWidth; }).map(function (w) {
    return (w.previousElementSibling ? w.previousElementSibling.textContent.slice(0, 40) : '?') +
           ' ' + w.scrollWidth + '>' + w.clientWidth; });
  var sorted = null, t = document.querySelector('table.perclass');
  if (t) {
    var before = Array.from(t.tBodies[0].rows).map(function (r) { return r.cells[0].textContent; });
    t.tHead.rows[0].cells[1].click(); t.tHead.rows[0].cells[1].click();  // descending count
    var after = Array.from(t.tBodies[0].rows).map(function (r) { return r.cells[0].textContent; });
    sorted = {before: before, after: after};
  }
  // a class x run table sorts by a run column of its last header row (runs under their arm)
  var heat = null, key = function (r) { return parseFloat(r.cells[1].getAttribute('data-sort')); };
  Array.from(document.querySelectorAll('table.heatmap')).some(function (h) {
    var keys = Array.from(h.tBodies[0].rows).map(key);
    if (keys.some(isNaN) || keys.every(function (k) { return k === keys[0]; })) return false;
    var head = h.tHead.rows[h.tHead.rows.length - 1];
    head.cells[1].click();
    heat = {header_rows: h.tHead.rows.length, before: keys, after: Array.from(h.tBodies[0].rows).map(key)};
    return true;
  });
  // the smallest text in any table: each element holding text of its own, by computed size
  var smallest = {px: 1e9, what: null};
  document.querySelectorAll('table *').forEach(function (e) {
    var own = Array.from(e.childNodes).some(function (n) { return n.nodeType === 3 && n.textContent.trim(); });
    var px = parseFloat(getComputedStyle(e).fontSize);
    if (own && px < smallest.px) smallest = {px: px, what: e.tagName + '.' + e.className + ' ' + e.textContent.slice(0, 20)};
  });
  // every figure's shown width (CSS px), with every folded section open
  var figures = Array.from(document.querySelectorAll('img.fig')).map(function (i) {
    return {w: i.getBoundingClientRect().width, drawn: i.naturalWidth, alt: i.alt}; });
  var pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errors, overflow: overflow,
                                   sorted: sorted, heat: heat, smallest: smallest,
                                   figures: figures});
  document.body.appendChild(pre);
});
</script>"""


#: 10 pt in CSS pixels: the smallest text a table may hold, on screen and on paper.
TEN_PT = 10 * 96 / 72
#: No figure may be shown narrower than this (CSS px), on screen or on paper.
MIN_FIGURE_PX = 300
#: Width of an A4 landscape page inside the print stylesheet's 1 cm margins, in CSS pixels.
A4_LANDSCAPE = round((297 - 20) / 25.4 * 96)


def _load(tmp_path, page, width=1280, print_rules=False):
    """Load a copy of ``page`` with the probe at ``width`` px; returns (probe, html, stderr).
    ``print_rules``: apply the print stylesheet on screen (the page as printed, at its width)."""
    html = page.read_text()
    probed = tmp_path / "probed.html"
    shown = html.replace("@media print {", "@media all {") if print_rules else html
    assert shown != html or not print_rules, "the page has no print stylesheet"
    probed.write_text(shown.replace("<head>", "<head>" + PROBE, 1))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
           f"--window-size={width},900",
           "--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    found = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert found, f"the page did not finish loading: {proc.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                       .replace("&lt;", "<").replace("&gt;", ">"))
    return probe, html, proc.stderr


def _check(probe, html, stderr, full_size_figures=False):
    assert probe["errors"] == []
    # Console messages the browser logged itself (e.g. a blocked resource) show up on stderr.
    console = [line for line in stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert console == []
    n_img = html.count("<img ")
    assert len(probe["images"]) == n_img > 10
    assert all(i["ok"] and i["w"] > 0 for i in probe["images"]), probe["images"]
    assert probe["overflow"] == []  # every table fits its container
    assert probe["smallest"]["px"] >= TEN_PT - 0.01, probe["smallest"]  # table text >= 10 pt
    # every figure is shown at its drawn size or wider than 300 px (their text is >= 10 pt at
    # that size, tests/test_figures.py), never squeezed below it by the page
    assert len(probe["figures"]) == html.count('class="fig"')
    small = [f for f in probe["figures"] if f["w"] < MIN_FIGURE_PX]
    assert small == [], small
    if full_size_figures:  # at 1280 px every figure is shown at its drawn size: text >= 10 pt
        shrunk = [f for f in probe["figures"] if f["w"] < f["drawn"] / 2 - 1]
        assert shrunk == [], shrunk
    if probe["sorted"]:
        assert probe["sorted"]["after"] != probe["sorted"]["before"]
        assert sorted(probe["sorted"]["after"]) == sorted(probe["sorted"]["before"])
    if probe["heat"]:
        assert probe["heat"]["after"] == sorted(probe["heat"]["before"]) != probe["heat"]["before"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_loads_in_headless_chromium(tmp_path, make_manifest):
    m = make_manifest({"<script>alert(1)</script>": 6, "b": 12}, size=8, name="toy")
    run = make_run(tmp_path / 'run &<>"', m)
    page = write_report([run, make_run(tmp_path / "dc", m, conditional=False)], tmp_path / "report.html",
                        audits=[fake_audit(m, collapsed=("b",)), fake_audit(m, fd=5.0)])
    html = page.read_text()
    assert html.lower().count("<script") == 1  # only the page's own sorting script
    assert "<script>alert" not in html
    _check(*_load(tmp_path, page))


@pytest.fixture(scope="module")
def long_study_page(tmp_path_factory):
    """4 arms × 3 seeds named as long as the committed studies' arms: the class × run tables
    hold 12 run columns and the runs-compared table 12 rows, as on the real pages."""
    root = tmp_path_factory.mktemp("long_study")
    (root / "manifests").mkdir()
    dirs, audits, study = fake_study(root, arms=4, seeds=3, per_class=32, arm_names=LONG_ARM_NAMES)
    # a 4-level sweep's curve of 7 metrics (the committed mnist_size page's): its panels too
    import dataclasses
    study = dataclasses.replace(study, curve=[
        {"sweep": "mnist", "factor": "size", "value": v, "metric": m, "mean": 1.0 + i,
         "ci_low": 0.5 + i, "ci_high": 1.5 + i, "n_seeds": 3}
        for m in ("fd", "kid", "precision", "recall", "density", "coverage", "label_fidelity")
        for i, v in enumerate((500, 2000, 10000, 60000))])
    return write_report(dirs, root / "report.html", audits=audits, study=study,
                        relative_paths=True, title="Fake study",
                        labels=[f"{a} (seed {s})" for a in LONG_ARM_NAMES for s in range(3)],
                        arm_seeds=[(a, s) for a in LONG_ARM_NAMES for s in range(3)])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
@pytest.mark.parametrize("width, print_rules", [(1280, False), (1024, False), (A4_LANDSCAPE, True)],
                         ids=["1280px", "1024px", "A4-landscape-print"])
def test_study_page_loads_fits_and_sorts_in_headless_chromium(tmp_path, long_study_page, width,
                                                              print_rules):
    # every table fits its container with text of at least 10 pt: on a wide and a small
    # screen, and with the print stylesheet on an A4 landscape page
    probe, html, stderr = _load(tmp_path, long_study_page, width, print_rules)
    _check(probe, html, stderr, full_size_figures=width == 1280)
    assert any(f["alt"] == "data-efficiency curve" for f in probe["figures"])
    assert probe["heat"]["header_rows"] == 2  # each arm heads its three seeds' columns
    assert html.count('<th class="arm" colspan="3">goodimg_diffaugment</th>') == 4


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_probe_sees_overflow_and_small_table_text(tmp_path, long_study_page):
    # control: the same page at 700 px on screen overflows, and 8 pt print table text is caught
    narrow, _, _ = _load(tmp_path, long_study_page, 700)
    assert narrow["overflow"]
    small = tmp_path / "small.html"
    small.write_text(long_study_page.read_text().replace(
        "</style>", "@media print { table td { font-size: 8pt; } }\n</style>", 1))
    printed, _, _ = _load(tmp_path, small, A4_LANDSCAPE, print_rules=True)
    assert printed["smallest"]["px"] < TEN_PT


def test_run_columns_are_headed_by_their_arm_over_their_seeds():
    # (no browser needed) the header rows that keep 12 runs of long arm names within 1280 px
    from datakit.report.comparison import Column, column_groups
    runs = [("skewed_acgan", 0), ("skewed_acgan", 1), ("goodimg_fnt", 2), ("skewed_acgan", 12)]
    groups, seeds = column_groups([Column(f"{a} s{s}", [], a, s) for a, s in runs])
    assert groups == [{"name": "skewed_acgan", "span": 2}, {"name": "goodimg_fnt", "span": 1},
                      {"name": "skewed_acgan", "span": 1}]
    assert seeds == ["s0", "s1", "s2", "s12"]
    # a run outside a study (no arm and seed) is headed by its label: one header row
    assert column_groups([Column("skewed_acgan s0", [], "skewed_acgan", 0), Column("run_b", [])]) is None
    assert column_groups([Column("seeds0", [])]) is None and column_groups([]) is None
