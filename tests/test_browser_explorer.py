"""Notebook 06's explorer in a real JupyterLab, driven by Debian's Chromium through playwright.

Run with ``python -m pytest -m browser``. Needs ``/usr/bin/chromium`` (``apt-get install chromium``);
playwright never downloads a browser here. Leaves a screenshot in ``test-artifacts/explorer.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "06_explorer.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
SERVER_START_S = 90
KERNEL_RUN_MS = 240_000  # run-all of notebook 06 (TensorFlow import + models) on a slow 2-core CI machine
UPDATE_MS = 60_000  # one widget interaction -> kernel -> new picture


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    """A JupyterLab on 127.0.0.1 with no token, over a temporary copy of notebooks/; killed afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the browser test drives Debian's Chromium; install it with "
                    "`apt-get install chromium` (never `playwright install`)")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    for folder in ("runtime", "config", "workspaces", "settings"):
        (base / folder).mkdir()
    env = dict(os.environ)
    env.update(
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        TF_CPP_MIN_LOG_LEVEL="3",
        TF_ENABLE_ONEDNN_OPTS="0",
    )
    port = _free_port()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}", f"--LabApp.user_settings_dir={base / 'settings'}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI queries
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    log = open(base / "server.log", "wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _answers(f"{url}/api/status"):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not start; log:\n{(base / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


@pytest.fixture(scope="module")
def page(lab_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(UPDATE_MS)
            yield tab
        finally:
            browser.close()


def _picture(image) -> str:
    """The bytes behind an <img> locator (ipywidgets uses blob: URLs), as base64, read inside the page."""
    return image.evaluate(
        """async (img) => {
            const data = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
            let text = ""; for (const b of data) text += String.fromCharCode(b);
            return btoa(text);
        }"""
    )


def test_explorer_reacts_to_class_and_layer_in_jupyterlab(page, lab_url):
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _drive_the_explorer(page, lab_url)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "explorer-failure.png"), full_page=True)
        raise


def _drive_the_explorer(page, lab_url):
    from playwright.sync_api import expect

    page.goto(f"{lab_url}/lab/tree/{NOTEBOOK}")
    page.locator(".jp-Notebook").first.wait_for(timeout=KERNEL_RUN_MS)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=KERNEL_RUN_MS)  # kernel ready
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

    explorer = page.locator(".camtutor-explorer").first
    failure = page.locator(".jp-OutputArea-output", has_text="Traceback")
    explorer.or_(failure).first.wait_for(timeout=KERNEL_RUN_MS)
    if failure.count():
        raise AssertionError(f"a notebook cell failed in JupyterLab:\n{failure.first.inner_text()[-2000:]}")
    title = explorer.locator(".camtutor-title")
    map_img = explorer.locator("img.camtutor-map")
    # later cells of the notebook drive this explorer (other layers, images), so its first layer may already
    # have changed by now: only require that it names a layer
    expect(title).to_contain_text(re.compile(r"layer \w+"), timeout=KERNEL_RUN_MS)
    expect(map_img).to_have_attribute("src", re.compile("."), timeout=KERNEL_RUN_MS)
    # the notebook's later cells drive this explorer too; wait until the kernel has run every cell
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-InputPrompt')].every(p => !p.textContent.includes('*'))"
        " && document.querySelectorAll('.camtutor-explorer').length >= 4",
        timeout=KERNEL_RUN_MS,
    )
    assert failure.count() == 0, failure.first.inner_text()[-2000:]
    explorer.scroll_into_view_if_needed()

    # class: choose another option in the <select>; the title names it and the map changes
    select = explorer.locator(".camtutor-class select")
    options = [text.replace("\xa0", " ") for text in select.locator("option").all_text_contents()]
    assert len(options) == 3 and all(re.fullmatch(r".+ \(\d\.\d\d\)", text) for text in options), options
    target = (select.evaluate("element => element.selectedIndex") + 1) % len(options)
    before = _picture(map_img)
    class_name = options[target].split(" (")[0]
    assert class_name not in title.inner_text()
    select.select_option(index=target)
    expect(title).to_contain_text(class_name)
    after_class = _poll_changed(map_img, before)

    # layer: the slider's handle takes keyboard input; Home goes to the first layer (conv1, 64x64)
    handle = explorer.locator(".camtutor-layer .noUi-handle").first
    assert "conv1" not in title.inner_text()
    handle.focus()
    handle.press("Home")
    expect(title).to_contain_text("conv1")
    expect(explorer.locator(".camtutor-layer .widget-readout")).to_contain_text("conv1")
    after_layer = _poll_changed(map_img, after_class)
    assert after_layer != after_class

    explorer.screenshot(path=str(ARTIFACTS / "explorer.png"))
    _upload_files(page, tmp_dir=ARTIFACTS)


def _upload_files(page, tmp_dir: Path) -> None:
    """The upload explorer: a PNG joins the images and is shown; a text file gets a message, nothing else."""
    import cv2
    import numpy as np
    from playwright.sync_api import expect

    yours = page.locator(".camtutor-explorer").filter(has=page.locator(".widget-upload")).first
    yours.scroll_into_view_if_needed()
    title, note = yours.locator(".camtutor-title"), yours.locator(".camtutor-note")
    expect(title).to_contain_text(re.compile(r"image \d+"))  # JupyterLab renders cells lazily, when in view
    shown = re.search(r"image (\d+)", title.text_content())
    count = int(shown.group(1)) + 1  # the last image is on screen
    square = np.full((80, 120, 3), 255, np.uint8)
    square[20:60, 40:80] = (200, 30, 30)  # a red square on white, as RGB
    png = tmp_dir / "upload-square.png"
    cv2.imwrite(str(png), square[..., ::-1])
    text = tmp_dir / "upload-notes.txt"
    text.write_text("not an image")
    button = yours.locator(".widget-upload")  # its <input type=file> is not in the DOM: use the file chooser

    def upload(path: Path) -> None:
        with page.expect_file_chooser() as chooser:
            button.click()
        chooser.value.set_files(str(path))

    upload(text)
    expect(note).to_contain_text("upload-notes.txt")
    expect(title).to_contain_text(f"image {count - 1}")
    upload(png)
    expect(title).to_contain_text(f"image {count}")
    expect(note).not_to_contain_text("upload-notes.txt")
    assert _picture(yours.locator("img.camtutor-image"))
    yours.screenshot(path=str(tmp_dir / "explorer-upload.png"))


def _poll_changed(image, old: str, timeout_s: float = UPDATE_MS / 1000) -> str:
    """Wait until the picture of an <img> locator differs from ``old``; return the new one."""
    deadline = time.monotonic() + timeout_s
    while True:
        new = _picture(image)
        if new != old:
            return new
        if time.monotonic() > deadline:
            raise AssertionError("the map panel did not change")
        time.sleep(0.2)
