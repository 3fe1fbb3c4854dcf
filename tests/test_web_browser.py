"""The web page in a real headless Chromium (Debian's chromium and chromium-driver, driven by selenium):
opened from the address `jaxnst serve` prints (with its token), upload two images, start a 64 px run on
random weights, watch the image change, see the run finish; and a page of another local server that posts
to it starts nothing. .ci/run installs the browser; without one these tests skip and say why."""

import http.server
import io
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.slow  # a browser start and a run: `pytest -m slow tests/test_web_browser.py`

from test_serve import free_port, serving  # noqa: E402

from jaxnst.cli.serve import page_url  # noqa: E402
from jaxnst.web.app import make_app  # noqa: E402
from jaxnst.web.runs import Runner  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture
def runner(tmp_path, vgg19):
    runner = Runner(tmp_path / "runs", vgg19, "cpu (browser test)")
    yield runner
    runner.close()


@pytest.fixture
def page(runner):
    """The page as `jaxnst serve` serves it, and its address with the token, as it prints it."""
    port, token = free_port(), "browser-test-token"
    with serving(make_app(runner, token=token), port):
        yield page_url("127.0.0.1", port, token)


skip_without_browser = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium and chromedriver (apt install chromium chromium-driver)"
)


@pytest.fixture
def driver():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@skip_without_browser
def test_the_page_paints_in_a_real_browser(page, driver, tmp_path, images_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver.get(page)
    assert "jaxnst" in driver.title and "token" not in driver.current_url  # out of the address bar
    driver.find_element(By.ID, "content").send_keys(str(images_dir / "tubingen.jpg"))
    driver.find_element(By.ID, "styles").send_keys(str(images_dir / "starry_night.jpg"))
    for name, value in (("size", "64"), ("steps", "30"), ("min_size", "none"), ("style_weight", "1e3")):
        field = driver.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)
    Select(driver.find_element(By.ID, "style_statistic")).select_by_value("gram")
    driver.find_element(By.ID, "start").click()
    wait = WebDriverWait(driver, 300, poll_frequency=0.05)
    status = driver.find_element(By.ID, "status")
    wait.until(lambda d: status.get_attribute("data-status") == "running" and " step 0/" not in status.text)
    first = driver.find_element(By.ID, "image0").screenshot_as_png
    driver.save_screenshot(str(tmp_path / "running.png"))
    wait.until(lambda d: status.get_attribute("data-status") == "done")
    wait.until(lambda d: d.execute_script("const i = document.getElementById('image0'); return i.complete"))
    driver.save_screenshot(str(tmp_path / "done.png"))
    last = driver.find_element(By.ID, "image0").screenshot_as_png
    assert "step 30/30" in status.text and driver.find_element(By.ID, "download0").is_displayed()
    a, b = (np.asarray(Image.open(io.BytesIO(p)).convert("RGB"), np.int16) for p in (first, last))
    assert a.shape == b.shape and np.abs(a - b).mean() > 1, "the image on the page did not change"


# Another server's page on this machine (another port: the same site, so the token's cookie goes along) that
# posts a run to the page the way a hostile page would: a script's fetch and a form, each with two images.
HOSTILE = """<!doctype html><title>hostile</title><iframe name="sink"></iframe><script>
const png = Uint8Array.from(atob("%s"), (c) => c.charCodeAt(0));
const file = (name) => new File([png], name, {type: "image/png"});
const target = "%s";
const form = new FormData();
form.append("content", file("c.png")); form.append("styles", file("s.png")); form.append("steps", "3");
const fetched = fetch(target, {method: "POST", body: form, credentials: "include"}).catch(() => null);
const f = document.createElement("form");
f.method = "POST"; f.action = target; f.enctype = "multipart/form-data"; f.target = "sink";
for (const name of ["content", "styles"]) {
  const input = document.createElement("input"); input.type = "file"; input.name = name;
  const files = new DataTransfer(); files.items.add(file(name + ".png")); input.files = files.files;
  f.appendChild(input);
}
document.body.appendChild(f);
const posted = new Promise((done) => { document.querySelector("iframe").onload = done; });
f.submit();
Promise.all([fetched, posted]).then(() => { document.title = "sent"; });
</script>"""


@skip_without_browser
@pytest.mark.parametrize("checked", [True, False])
def test_another_local_page_cannot_start_a_run(tmp_path, vgg19, driver, monkeypatch, checked):
    """The browser has the token's cookie (the page was opened from its address); a page of another server on
    this machine posts runs: none starts. Without the checks of ``refused`` the same page starts them (the
    test sees what it would miss)."""
    import base64

    from selenium.webdriver.support.ui import WebDriverWait

    import jaxnst.web.app as app

    monkeypatch.setattr(Runner, "_work", lambda self: None)  # a run that starts stays queued: nothing computes
    runner = Runner(tmp_path / "runs", vgg19)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    if not checked:
        monkeypatch.setattr(app, "refused", lambda method, headers, hosts: None)
    port, token = free_port(), "browser-test-token"
    hostile = HOSTILE % (base64.b64encode(buf.getvalue()).decode(), f"http://127.0.0.1:{port}/api/runs")

    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(hostile.encode())

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with serving(make_app(runner, token=token), port):
            driver.get(page_url("127.0.0.1", port, token))
            assert "jaxnst" in driver.title
            driver.get(f"http://127.0.0.1:{other.server_address[1]}/")
            WebDriverWait(driver, 60, poll_frequency=0.05).until(lambda d: d.title == "sent")
    finally:
        other.shutdown()
    if checked:
        assert runner.runs == {}
    else:
        assert len(runner.runs) == 2, runner.runs
