"""The report page: built from a run directory, opened in headless Chromium, its plots decoded."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgefl.errors import EdgeflError
from edgefl.report import render_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXPECTED_PLOTS = {
    "accuracy-vs-time",
    "accuracy-vs-round",
    "accuracy-vs-bytes",
    "contact-timeline",
    "layers",
    "latency",
}
# Runs in the page after load: reports every image's decode state into the DOM that --dump-dom prints.
CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('img').forEach(function (img) {
    out.push({key: img.getAttribute('data-plot'), complete: img.complete,
              w: img.naturalWidth, h: img.naturalHeight});
  });
  var pre = document.createElement('pre'); pre.id = 'plot-check';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""
# A deliberately broken image proves the check can fail.
BROKEN_IMG = '<img data-plot="negative-control" src="data:image/png;base64,bm90IGEgcG5n">'


@pytest.fixture(scope="module")
def report(run_dir):
    return render_report(run_dir)


def test_report_is_one_self_contained_page(report):
    page = report.read_text()
    assert set(re.findall(r'data-plot="([^"]+)"', page)) == EXPECTED_PLOTS
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in page and "https://" not in page  # nothing fetched when opened offline
    for heading in ("Federation in orbit", "Contact windows", "Compression", "Export parity", "Latency"):
        assert f"<h2>{heading}</h2>" in page


def test_report_shows_only_what_the_run_has(tmp_path):
    (tmp_path / "latency.json").write_text(
        json.dumps({"engine": "onnxruntime", "samples_ms": [1.0, 2.0, 3.0]})
    )
    page = render_report(tmp_path).read_text()
    assert re.findall(r'data-plot="([^"]+)"', page) == ["latency"]
    assert "not in this run: Summary, Federation in orbit" in page


def test_round_metrics_lines_make_their_own_section(tmp_path):
    rows = [{"round": r, "mode": "sync", "federation": "f", "clients": 3, "accuracy": 0.5 + r / 10,
             "loss": 1.0 / r, "bytes_up": 1000, "bytes_down": 4000, "announcement_bytes": 1333,
             "snapshot_bytes": 12345, "rejected": 0, "round_s": 2.0, "eval_s": 0.1} for r in (1, 2)]
    lines = [json.dumps(r) for r in rows] + ["{torn"]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    page = render_report(tmp_path).read_text()
    assert "<h2>Federation rounds</h2>" in page
    assert set(re.findall(r'data-plot="([^"]+)"', page)) == {
        "rounds-accuracy", "rounds-accuracy-vs-bytes", "rounds-accuracy-vs-bytes-down"}
    assert '<td class="num">1,333</td>' in page and '<td class="num">12,345</td>' in page
    assert '<td class="num">0.7</td>' in page and "metrics.jsonl line 3 skipped" in page


def test_empty_run_directory_is_refused(tmp_path):
    with pytest.raises(EdgeflError, match="nothing to report"):
        render_report(tmp_path)
    with pytest.raises(EdgeflError, match="not found"):
        render_report(tmp_path / "missing")


def _chromium_dump_dom(page: Path, profile: Path) -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120, check=True)
    return out.stdout.decode()


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (CI requires it)"
)
def test_report_plots_decode_in_headless_chromium(report, tmp_path):
    assert CHROMIUM, "CI must have chromium to render the report"
    page = tmp_path / "check.html"
    page.write_text(report.read_text().replace("</body>", BROKEN_IMG + CHECK_SCRIPT + "</body>"))
    dom = _chromium_dump_dom(page, tmp_path / "profile")
    found = re.search(r'<pre id="plot-check">(.*?)</pre>', dom, re.S)
    assert found, "the check script did not run in Chromium"
    images = {i["key"]: i for i in json.loads(found.group(1).replace("&quot;", '"'))}
    assert images.pop("negative-control")["w"] == 0
    assert set(images) == EXPECTED_PLOTS
    for key, img in images.items():
        assert img["complete"] and img["w"] > 100 and img["h"] > 100, key


def test_facts_read_as_the_terminal_prints_them():
    from edgefl.report.html import fact_rows

    rows = fact_rows({"federation_target": 0.198, "target_gain": 0.1, "top1_agreement": 1.0,
                      "sync_hours_to_target": None, "async_hours_to_target": 0.8, "schedule": None,
                      "sync_versions": 1, "alpha": 0.5})
    assert rows == [["federation target", "19.80 %"], ["target gain", "+10 points"],
                    ["top1 agreement", "100.00 %"], ["sync hours to target", "not reached"],
                    ["async hours to target", 0.8], ["schedule", "—"], ["sync versions", 1], ["alpha", 0.5]]
