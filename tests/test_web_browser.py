"""The web page in a real headless Chromium (Debian's chromium and chromium-driver, driven by selenium):
upload two images, start a 64 px run on random weights, watch the image change, see the run finish.
.ci/run installs the browser; without one this test skips and says why."""

import io
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")

from jaxnst.web.app import make_app  # noqa: E402
from jaxnst.web.runs import Runner  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def page_url(tmp_path, vgg19):
    runner = Runner(tmp_path / "runs", vgg19, "cpu (browser test)")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(runner), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)
    runner.close()


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium and chromedriver (apt install chromium chromium-driver)"
)
def test_the_page_paints_in_a_real_browser(page_url, tmp_path, images_dir):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(page_url)
        assert "jaxnst" in driver.title
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
    finally:
        driver.quit()
