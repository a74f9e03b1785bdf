"""Issue 11, reports: every report kind opens in headless Chromium with no console error, no external URL and
every image decoded; the Fig 7 report shows the per-input dependence figure (item 16); the text of the reports
has none of the defects of item 17.

How: the report is copied into an empty directory (so it must be self-contained) with two small scripts added —
one first in <head> that records script errors, failed resource loads and console.error calls, one at the end
that, on load, writes what it found (every <img>: alt, naturalWidth, naturalHeight; every resource the page
fetched) into a <pre id="__probe__">. ``chromium --headless --dump-dom`` prints the DOM after load; console
messages come from ``--enable-logging=stderr`` (any message counts: a static report has no reason to log). No
Python dependency beyond the standard library. Set LEARNSCOPE_REPORT_SCREENSHOTS=DIR to also save a full-page
screenshot of each report there (to look at them).

Fig 7 marker: an <img> whose alt text (= its caption) matches :data:`PER_INPUT` — "per-input" or the caption
the bias report uses for that figure, "Which inputs f depends on …".
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from safety_helpers import bias_run, classify_run, fig7_run, fixture_store

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs the "
                                                             "Debian package `chromium`)")

PER_INPUT = re.compile(r"per[- ]input|which inputs f depends on", re.IGNORECASE)

REPORTS = {
    "easiest": lambda: bias_run("easiest"),
    "series": lambda: bias_run("series"),
    "contrast": lambda: bias_run("contrast"),
    "fig7": fig7_run,
    "identify": classify_run,
}

HEAD_PROBE = """<script>
window.__probeErrors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window && t.tagName) {
    window.__probeErrors.push('failed to load <' + t.tagName.toLowerCase() + '> ' +
                              String(t.currentSrc || t.src || t.href || '').slice(0, 120));
  } else {
    window.__probeErrors.push('script error: ' + e.message);
  }
}, true);
(function () {
  var original = console.error;
  console.error = function () {
    window.__probeErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
</script>"""

TAIL_PROBE = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, complete: img.complete,
            src: String(img.getAttribute('src') || '').slice(0, 40)};
  });
  var resources = performance.getEntriesByType('resource').map(function (r) { return r.name; });
  var pre = document.createElement('pre');
  pre.id = '__probe__';
  pre.textContent = JSON.stringify({images: images, resources: resources, errors: window.__probeErrors});
  document.body.appendChild(pre);
});
</script>"""

CONSOLE = re.compile(r":CONSOLE[:(]?\d*\)?\]?\s*(.*)")


def _with_probes(page: str) -> str:
    head = re.search(r"<head[^>]*>", page, re.IGNORECASE)
    page = page[: head.end()] + HEAD_PROBE + page[head.end():] if head else HEAD_PROBE + page
    tail = page.lower().rfind("</body>")
    return page[:tail] + TAIL_PROBE + page[tail:] if tail != -1 else page + TAIL_PROBE


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-extensions", "--hide-scrollbars", *args], capture_output=True, text=True,
                          timeout=timeout)


def _open(report: Path, tmp_path: Path) -> dict:
    """Open ``report`` in headless Chromium; returns the probe's findings plus the console messages."""
    page = tmp_path / "report.html"
    page.write_text(_with_probes(report.read_text(encoding="utf-8")), encoding="utf-8")
    profile = tmp_path / "profile"
    proc = _chromium(f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                     "--virtual-time-budget=15000", "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="__probe__">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert found, f"the page did not finish loading in chromium (rc {proc.returncode}): {proc.stderr[-2000:]}"
    probe = json.loads(html.unescape(found.group(1)))
    probe["console"] = [m.group(1) for m in map(CONSOLE.search, proc.stderr.splitlines()) if m]
    shots = os.environ.get("LEARNSCOPE_REPORT_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        _chromium(f"--user-data-dir={profile}", f"--screenshot={Path(shots) / (report.parent.name + '.png')}",
                  "--window-size=1200,6000", "--virtual-time-budget=15000", report.resolve().as_uri())
    return probe


EXTERNAL = re.compile(r"""(?<![\w-])(?:https?:)?//[\w.-]+\.[a-z]{2,}""", re.IGNORECASE)
NAMESPACE = re.compile(r"""xmlns(?::\w+)?=["']https?://www\.w3\.org/[^"']*["']""", re.IGNORECASE)


def _external_urls(page: str) -> list[str]:
    """http(s):// and protocol-relative //host URLs in the page, XML namespace declarations aside."""
    return sorted(set(EXTERNAL.findall(NAMESPACE.sub("", page))))


@needs_chromium
@pytest.mark.parametrize("kind", list(REPORTS))
def test_report_opens_cleanly_in_a_browser(tmp_path, kind):
    report = REPORTS[kind]() / "report.html"
    page = report.read_text(encoding="utf-8")
    assert not _external_urls(page), f"external URLs in the {kind} report: {_external_urls(page)}"
    probe = _open(report, tmp_path)
    assert not probe["errors"], f"{kind}: {probe['errors']}"
    assert not probe["console"], f"{kind}: console messages {probe['console']}"
    assert probe["images"], f"the {kind} report has figures"
    broken = [i for i in probe["images"] if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert not broken, f"{kind}: images not decoded: {broken}"
    fetched = [r for r in probe["resources"] if re.match(r"https?:", r)]
    assert not fetched, f"{kind}: fetched {fetched}"
    if kind == "fig7":
        figure = [i for i in probe["images"] if PER_INPUT.search(i["alt"])]
        assert figure, f"the Fig 7 report shows the per-input dependence figure: {[i['alt'] for i in probe['images']]}"
        assert all(i["width"] > 0 for i in figure)


def test_probe_catches_what_it_should(tmp_path):
    """The browser check itself can fail: a broken image, a script error, a console message and an external
    URL are each reported."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "report.html").write_text(
        '<html><head><title>t</title></head><body><img alt="missing" src="missing.png">'
        '<img alt="garbage" src="data:image/png;base64,AAAA"><script>console.log("hi"); nosuchfunction();</script>'
        '<a href="https://example.org/x">x</a></body></html>')
    probe = _open(bad / "report.html", tmp_path)
    assert [i["width"] for i in probe["images"]] == [0, 0]
    assert any("missing.png" in e for e in probe["errors"]) and any("nosuchfunction" in e for e in probe["errors"])
    assert any("hi" in m for m in probe["console"])
    assert _external_urls((bad / "report.html").read_text()) == ["https://example.org"]


# ----------------------------------------------------------------------------------------------------------------
# the text of the reports (item 17): no chromium needed


def _text(page: str) -> str:
    """The visible text: tags and embedded images removed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.DOTALL | re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize("kind", ["easiest", "series", "contrast", "fig7"])
def test_bias_reports_show_no_raw_keys(kind):
    """Item 17: no panel or table is titled with a raw metrics key such as `generalisation_b`."""
    page = (REPORTS[kind]() / "report.html").read_text(encoding="utf-8")
    text = _text(re.sub(r"<pre\b.*?</pre>", " ", page, flags=re.DOTALL))  # the config listing may name keys
    raw = sorted(set(re.findall(r"\bgeneralisation_b\b|\bgen_ratio_b_over_a\b", text)))
    assert not raw, f"raw keys in the {kind} report: {raw}"


def test_identify_report_text():
    """Item 17: the identify report prints no `None`, has no empty header row, cites no internal spec document
    and does not embed the store's absolute path."""
    page = (classify_run() / "report.html").read_text(encoding="utf-8")
    text = _text(page)
    assert not re.search(r"<td[^>]*>\s*None\s*</td>", page), "None printed in a table cell"
    assert not re.search(r"<tr[^>]*>\s*(<th[^>]*>\s*</th>\s*)*</tr>", page), "an empty header row"
    assert not re.search(r"\bspec\s*§|-spec\b|identify-spec|bias-spec", text), "cites an internal spec document"
    store = fixture_store()
    assert str(store.resolve()) not in page and str(store.absolute()) not in page, "embeds the store's path"


def test_fig7_report_names_inputs_from_zero_in_text_and_figures():
    """Item 16: the Fig 7 report has the per-input figure, and indexes inputs the same way in its text (x₀ …)
    as the over-connected input of the config (input 0)."""
    page = (fig7_run() / "report.html").read_text(encoding="utf-8")
    alts = re.findall(r'<img[^>]*\balt="([^"]*)"', page)
    assert any(PER_INPUT.search(html.unescape(a)) for a in alts), alts
    assert "longitude/latitude" not in _text(page), "S⁴ has no longitude/latitude map"
    text = _text(page)
    assert re.search(r"x₀|x_0|x0\b", text), "inputs are indexed from 0, as the config's over-connected input 0"
    assert not re.search(r"x₅|x_5\b", text), "S⁴ has inputs x₀ … x₄ only"
