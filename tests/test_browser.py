"""The report in a real browser: headless Chromium loads it from disk with no console errors
and every image decodes. Skips when Chromium is not installed (.ci/run installs it)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from datakit.report.html import write_report
from fake_runs import fake_audit, make_run

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
  var pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_loads_in_headless_chromium(tmp_path, make_manifest):
    m = make_manifest({"<script>alert(1)</script>": 6, "b": 6}, size=8, name="toy")
    run = make_run(tmp_path / 'run &<>"', m)
    page = write_report([run, make_run(tmp_path / "dc", m, conditional=False)], tmp_path / "report.html",
                        audits=[fake_audit(m, collapsed=("b",)), fake_audit(m, fd=5.0)])
    html = page.read_text()
    assert "<script" not in html.lower()  # the page itself runs no script
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("<head>", "<head>" + PROBE, 1))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
           "--enable-logging=stderr", "--v=0", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    found = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert found, f"the page did not finish loading: {proc.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert probe["errors"] == []
    # Console messages the browser logged itself (e.g. a blocked resource) show up on stderr.
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert console == []
    n_img = html.count("<img ")
    assert len(probe["images"]) == n_img > 10
    assert all(i["ok"] and i["w"] > 0 for i in probe["images"]), probe["images"]
