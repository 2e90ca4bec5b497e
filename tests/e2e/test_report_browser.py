"""The report's page opened in headless Chromium (Debian's `chromium`): what it shows.

A real run (a tiny real ONNX model, Offline and SingleStream, accuracy and performance,
LoadGen's trace kept) → `mlperf-pilot report` → the browser, with the network mapped
to nowhere:

- the page as written (`--dump-dom`): every test id in the list and on a card; not one
  console message (the page has no script, so any message is an error: a picture that
  did not decode, a blocked request, a Content-Security-Policy violation);
- the same page with a probe script appended (a copy; its policy then lets inline
  scripts run): every picture decoded with its natural size and drawn with a non-zero
  size, and no resource fetched (data: URIs are not fetches);
- a screenshot: a PNG of the page as drawn.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlperf_pilot.cli.main import main
from mlperf_pilot.report.html import CSP
from mlperf_pilot.results.store import open_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                       "(apt-get install chromium): the page cannot be opened in a browser"),
]

_PROBE = """<script>
window.addEventListener("load", () => {
  const pictures = [...document.images].map(img => {
    const box = img.getBoundingClientRect();
    return {name: img.closest("figure").dataset.picture, complete: img.complete,
            natural: [img.naturalWidth, img.naturalHeight], drawn: [box.width, box.height]};
  });
  const cards = [...document.querySelectorAll("section.card")].map(s => s.dataset.testId);
  const listed = [...document.querySelectorAll("tr[data-test-id]")].map(r => r.dataset.testId);
  const fetched = performance.getEntriesByType("resource").map(e => e.name);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({pictures, cards, listed, fetched,
                                    text: document.body.innerText});
  document.body.appendChild(out);
});
</script>
"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={tmp_path / 'chromium-profile'}",
               "--enable-logging=stderr", "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND",
               "--virtual-time-budget=5000", "--window-size=1280,2000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture
def report(tmp_path: Path, colour_imagenet: Path, resnet50_model: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    code = main(["run", "--model", "resnet50", "--model-path", str(resnet50_model),
                 "--dataset-path", str(colour_imagenet), "--results-dir", str(results),
                 "--scenario", "Offline", "--scenario", "SingleStream", "--mode", "both",
                 "--duration-ms", "300", "--trace"])
    assert code == 0
    assert main(["report", "--results-dir", str(results)]) == 0
    ids = [t.test_id for t in open_store(results_dir=results).select()]
    return results / "report" / "index.html", ids


def test_the_page_in_headless_chromium(report: tuple[Path, list[str]], tmp_path: Path) -> None:
    index, ids = report
    page = index.read_text(encoding="utf-8")
    expected_pictures = re.findall(r'data-picture="([^"]+)"', page)
    assert len(expected_pictures) >= 4  # latency + throughput for Offline and SingleStream

    shown = _chromium(tmp_path, "--dump-dom", index.as_uri())
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert _console(shown.stderr) == []
    dom = shown.stdout
    for test_id in ids:
        assert f'data-test-id="{test_id}"' in dom
        assert test_id in html.unescape(re.sub(r"<[^>]+>", " ", dom))

    probe = index.with_name("probe.html")
    probe.write_text(page.replace(CSP, CSP + "; script-src 'unsafe-inline'")
                     .replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    probed = _chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert probed.returncode == 0, probed.stderr[-2000:]
    assert _console(probed.stderr) == []
    found = re.search(r'<pre id="probe">(.*?)</pre>', probed.stdout, re.S)
    assert found, probed.stdout[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["fetched"] == []
    assert seen["cards"] == ids and seen["listed"] == ids
    assert [p["name"] for p in seen["pictures"]] == expected_pictures
    for picture in seen["pictures"]:
        assert picture["complete"], picture
        assert min(picture["natural"]) > 100, picture
        assert min(picture["drawn"]) > 100, picture
    for words in ("Tests", "Accuracy", "Each test", "VALID", "top1", "Samples/s"):
        assert words in seen["text"], words

    shot = tmp_path / "report.png"
    taken = _chromium(tmp_path, f"--screenshot={shot}", "--hide-scrollbars", index.as_uri())
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
