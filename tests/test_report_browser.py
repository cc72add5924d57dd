"""The HTML report opened in real headless Chromium: it renders, and nothing fails on the console."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fio_log_folder import with_logs
from sweep_folder import sweep_folder

from bench import report

FIXTURES = Path(__file__).parent / "fixtures" / "results"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Injected into a copy of the page only: the report itself has no script.
ERROR_RECORDER = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.target.outerHTML)), true);
const _error = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); _error(...args); };
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "recorded-errors";
  out.textContent = "ERRORS:" + JSON.stringify(window.__errors) + ";SVGS:" + document.querySelectorAll("svg").length
    + ";WIDTH:" + Math.max(...[...document.querySelectorAll("svg")].map(s => s.getBoundingClientRect().width));
  document.body.appendChild(out);
});
</script>"""

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind", ["report", "comparison", "sweeps", "over-time"])
def test_html_renders_in_chromium_without_errors(tmp_path: Path, kind: str) -> None:
    if kind == "report":
        page = report.write_report(FIXTURES / "basic", tmp_path / "report.html", "html")
    elif kind == "sweeps":
        page = report.write_report(sweep_folder(tmp_path / "sweeps"), tmp_path / "report.html", "html")
    elif kind == "over-time":  # fio's logs kept: throughput over time beside CPU and fds
        page = report.write_report(with_logs(FIXTURES / "basic", tmp_path / "basic"), tmp_path / "report.html", "html")
    else:
        page = report.write_comparison(FIXTURES / "basic", [FIXTURES / "basic-b", FIXTURES / "basic-c"], tmp_path / "report.html")
    html = page.read_text()
    if kind == "sweeps":  # the sweep curves and the absolute figures are there, each a chart
        assert '<h2 id="sweeps">' in html and "<figcaption>One panel per swept workload" in html
        assert "<figcaption>Median of each target" in html

    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a blank 1200x3000 PNG is a few kB
    console = [line for line in result.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line]
    assert console == []

    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + ERROR_RECORDER, 1))
    dom = chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    recorded = re.search(r'<pre id="recorded-errors">ERRORS:(.*);SVGS:(\d+);WIDTH:([\d.]+)</pre>', dom)
    assert recorded, dom[-2000:]
    errors, svgs, width = recorded.groups()
    assert errors == "[]"
    assert int(svgs) == {"report": 6, "comparison": 1, "sweeps": 4, "over-time": 6}[kind]
    if kind == "over-time":
        assert "seqread-1m: MiB/s (fio log)" in dom and "seqread-1m: daemon open fds" in dom
    assert float(width) > 300  # charts laid out at a readable size
