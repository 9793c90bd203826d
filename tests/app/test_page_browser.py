"""The upload page in headless Chromium against a real gunicorn serving the sample image
model: a file chosen in the page is uploaded, its labels shown with bars, screenshot saved
under reports/ (reports/page-upload.png); files dropped on it too, a refused one's error
shown."""

import pytest

from tests.pipeline.prerequisites import require
from tests.support.browser import CHROMIUM, Browser, save_screenshot
from tests.support.gunicorn_server import REPO_ROOT, GunicornServer
from tests.support.image_model import rotated_page
from tests.support.installed_image_model import install_sample_image_model

pytestmark = pytest.mark.slow
SCREENSHOT = REPO_ROOT / "reports" / "page-upload.png"
# Resolves once the page shows a result or an error (a DOM change, no polling).
RESULT = """new Promise((resolve) => {
  const shown = () => !document.getElementById("result").hidden
    || document.getElementById("status").classList.contains("error");
  const read = () => resolve({
    title: document.getElementById("result-title").textContent,
    labels: [...document.querySelectorAll("#scores .label")].map((e) => e.textContent),
    bars: [...document.querySelectorAll("#scores progress")].map((e) => e.value),
    status: document.getElementById("status").textContent,
  });
  if (shown()) return read();
  new MutationObserver((_, observer) => {
    if (shown()) { observer.disconnect(); read(); }
  }).observe(document.body, { subtree: true, attributes: true, childList: true });
})"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    require(CHROMIUM is not None, "chromium (make setup) or google-chrome")
    return install_sample_image_model(tmp_path_factory.mktemp("page-browser"))


def drop(browser: Browser, path) -> None:
    """Drag the file from outside the page and drop it on the drop zone, as a person does."""
    x, y = browser.evaluate(
        "(() => { const r = document.getElementById('drop').getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    data = {"items": [], "files": [str(path)], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        browser.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})


def test_a_person_uploads_a_page_and_sees_its_labels_with_bars(installed, tmp_path):
    upside_down = tmp_path / "upside-down.jpg"
    upside_down.write_bytes(rotated_page(180))
    (sideways := tmp_path / "sideways.png").write_bytes(rotated_page(90, "PNG"))
    (notes := tmp_path / "notes.txt").write_text("not an image")
    env = installed["env"] | {"MAX_REQUEST_BYTES": str(4 * 1024 * 1024)}

    with GunicornServer(env, workers=1) as server, Browser() as browser:
        browser.send("Page.enable")
        browser.send("Log.enable")
        browser.send("Page.navigate", {"url": server.url + "/"})
        browser.wait_for("Page.loadEventFired")
        document = browser.send("DOM.getDocument")["root"]["nodeId"]
        node = browser.send("DOM.querySelector", {"nodeId": document, "selector": "#file"})
        browser.send("DOM.setFileInputFiles", {"files": [str(upside_down)], **node})
        result = browser.evaluate(RESULT)
        shown = browser.evaluate(
            "[...document.querySelectorAll('#model dd')].map((e) => e.textContent)"
        )
        save_screenshot(browser, SCREENSHOT)
        drop(browser, notes)
        refused = browser.evaluate(RESULT)
        drop(browser, sideways)
        dropped = browser.evaluate(RESULT)
        problems = [
            event["params"]["entry"]
            for event in browser.events
            if event.get("method") == "Log.entryAdded"
            and event["params"]["entry"]["level"] == "error"
            and "/predict" not in event["params"]["entry"].get("url", "")  # the refused file
        ]

    assert refused["status"].startswith("notes.txt: image 1: not an image"), refused
    assert dropped["title"] == "sideways.png: 90" and dropped["status"] == ""
    assert result["status"] == "", result["status"]
    assert result["title"] == "upside-down.jpg: 180"
    assert result["labels"][0] == "180" and sorted(result["labels"]) == ["0", "180", "270", "90"]
    assert result["bars"] == sorted(result["bars"], reverse=True) and result["bars"][0] > 0.5
    assert shown == ["orientation", "1", installed["digest"]]
    assert problems == []  # no CSP violation, no failed load
    assert SCREENSHOT.stat().st_size > 10_000
