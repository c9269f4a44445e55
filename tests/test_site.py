"""The website (docs/, Sphinx + myst-nb) built with -W and checked in a real browser, Debian's Chromium.

Run with ``python -m pytest -m site`` after ``pip install -e ".[docs,test]"``. Needs ``/usr/bin/chromium``
(``apt-get install chromium``); playwright never downloads a browser here. The test builds the site itself with
the documented command into a temporary folder, serves it with ``python -m http.server`` on 127.0.0.1 and visits
every page it checks, failing on any console error or failed request (the site must work offline).
Leaves screenshots in ``test-artifacts/site-notebook.png`` and ``test-artifacts/site-explorer.png``.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
BUILD_S = 300
SERVER_START_S = 30
PAGE_MS = 30_000
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _title(notebook: dict) -> str:
    """The notebook's first markdown heading, as the page and the table of contents show it."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            match = re.search(r"^#\s+(.+)$", "".join(cell["source"]), re.M)
            if match:
                return re.sub(r"[*_`]", "", match.group(1)).strip()
    raise AssertionError("notebook without a title")


def _figures(notebook: dict) -> int:
    """How many pictures (PNG / JPEG outputs) the notebook has saved."""
    return sum(
        any(mime in output.get("data", {}) for mime in ("image/png", "image/jpeg"))
        for cell in notebook["cells"] if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )


def _has_widgets(notebook: dict) -> bool:
    return any(
        WIDGET_MIME in output.get("data", {})
        for cell in notebook["cells"] if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )


def _has_math(notebook: dict) -> bool:
    return any("$" in "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The documented build command (warnings are errors), into a temporary folder."""
    out = tmp_path_factory.mktemp("site") / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "-b", "html", "docs", str(out)]
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_S)
    seconds = time.monotonic() - start
    assert done.returncode == 0, f"the site build failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    print(f"site built in {seconds:.1f} s")
    return out


@pytest.fixture(scope="module")
def site_url(site):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while _status(f"{url}/index.html") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("python -m http.server did not start")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the site test drives Debian's Chromium; install it with "
                    "`apt-get install chromium` (never `playwright install`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """One tab that records every console error, uncaught exception and failed request of the pages it opens."""

    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(PAGE_MS)
        self.problems: list[str] = []
        self.page.on("console", lambda msg: msg.type == "error" and self.problems.append(f"console: {msg.text}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"exception: {error}"))
        self.page.on("requestfailed", lambda request: self.problems.append(f"request failed: {request.url}"))
        self.page.on(
            "response",
            lambda response: response.status >= 400 and self.problems.append(f"HTTP {response.status}: {response.url}"),
        )

    def open(self, path: str):
        self.problems.clear()
        self.page.goto(f"{self.base}/{path}", wait_until="load")
        return self.page

    def check_clean(self, path: str) -> None:
        self.page.wait_for_timeout(300)  # late console messages (MathJax, search) arrive after "load"
        assert not self.problems, f"{path}: " + "\n".join(self.problems)

    def close(self) -> None:
        self.page.close()


@pytest.fixture()
def visit(browser, site_url):
    tab = Visit(browser, site_url)
    yield tab
    tab.close()


def _broken_images(page) -> list[str]:
    return page.evaluate(
        "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )


def test_index_lists_every_notebook_in_order_and_the_guide(visit):
    page = visit.open("index.html")
    body = page.locator("article")
    hrefs = [href for href in body.locator("a.reference.internal").evaluate_all("(links) => links.map(a => a.getAttribute('href'))")
             if href.startswith("notebooks/")]
    expected = [f"notebooks/{path.stem}.html" for path in NOTEBOOKS]
    assert [h for h in hrefs if h in expected] == expected, hrefs  # every notebook, in file order
    for path in NOTEBOOKS:
        link = body.locator(f'a[href="notebooks/{path.stem}.html"]')
        assert _title(_notebook(path)) in link.first.inner_text().replace("\n", " ")
    for page_name in ("api.html", "cli.html", "benchmarks.html"):
        assert body.locator(f'a[href="{page_name}"]').count() >= 1, page_name
    assert _broken_images(page) == []
    visit.check_clean("index.html")
    if (ROOT / "docs" / "instructor-guide.md").exists():  # another helper's page: listed, loads, links work
        assert body.locator('a[href="instructor-guide.html"]').count() >= 1
        page = visit.open("instructor-guide.html")
        assert page.locator("article h1").count() == 1
        internal = page.locator("article a.reference.internal").evaluate_all("(links) => links.map(a => a.href)")
        for href in {h.split("#")[0] for h in internal}:
            assert _status(href) == 200, href
        assert _broken_images(page) == []
        visit.check_clean("instructor-guide.html")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_page_shows_its_figures_math_and_links(visit, site_url, notebook):
    nb = _notebook(notebook)
    path = f"notebooks/{notebook.stem}.html"
    page = visit.open(path)
    article = page.locator("article")
    assert _title(nb) in page.locator("h1").first.inner_text()
    if _has_math(nb):
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=PAGE_MS)
        page.evaluate("() => MathJax.startup.promise")
        assert article.locator("mjx-container").count() > 0, "MathJax did not typeset the page's math"
        assert article.locator("mjx-merror, [data-mjx-error]").count() == 0, "MathJax reported a TeX error"
    images = page.evaluate("() => document.querySelectorAll('article img').length")
    assert images >= _figures(nb), f"{path}: {images} pictures on the page, {_figures(nb)} saved in the notebook"
    assert _broken_images(page) == []

    # links between notebooks ("[next](03_target_function.ipynb)") point to the pages of the site, and load
    internal = article.locator("a.reference.internal").evaluate_all("(links) => links.map(a => a.href)")
    for href in {h.split("#")[0] for h in internal}:
        assert not href.endswith(".ipynb"), href
        assert _status(href) == 200, href
    for other in re.findall(r"\]\((\d\d_\w+)\.ipynb\)", json.dumps(nb)):
        assert article.locator(f'a[href="{other}.html"]').count() >= 1, f"no link to {other}.html"

    if _has_widgets(nb):  # the explorer: say that the widgets need a kernel, and where to run it live
        note = article.locator(".admonition.note", has_text="static copy").first
        assert "kernel" in note.inner_text()
        hrefs = note.locator("a").evaluate_all("(links) => links.map(a => a.href)")
        assert any(h.startswith("https://mybinder.org/") and notebook.name in h for h in hrefs), hrefs
        assert any(h.startswith("https://colab.research.google.com/") and h.endswith(notebook.name) for h in hrefs)
        ARTIFACTS.mkdir(exist_ok=True)
        note.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "site-explorer.png"))
    if notebook == next(path for path in NOTEBOOKS if _has_math(_notebook(path))):  # kept for a human to look at
        ARTIFACTS.mkdir(exist_ok=True)
        article.locator("mjx-container[display]").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "site-notebook.png"))
    visit.check_clean(path)


def test_search_finds_grad_cam(visit):
    page = visit.open("search.html?q=Grad-CAM")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=PAGE_MS)
    hrefs = results.locator("a").evaluate_all("(links) => links.map(a => a.getAttribute('href'))")
    assert any(h.startswith("notebooks/") for h in hrefs), hrefs
    assert any(h.startswith("api.html") for h in hrefs), hrefs
    visit.check_clean("search.html")


def test_api_page_documents_the_public_functions(visit):
    page = visit.open("api.html")
    for name in ("camtutor.explain.grad_cam", "camtutor.explain.cam", "camtutor.maths.normalize",
                 "camtutor.draw.overlay", "camtutor.localize.box_from_map", "camtutor.loading.load_model"):
        entry = page.locator(f'dt[id="{name}"]')
        assert entry.count() == 1, name
    signature = page.locator('dt[id="camtutor.explain.grad_cam"]').inner_text()
    assert "class_index" in signature and "weighting" in signature
    grad_cam = page.locator('dl:has(> dt[id="camtutor.explain.grad_cam"]) > dd').first.inner_text()
    assert "Selvaraju" in grad_cam and "Parameters" in grad_cam  # the docstring, its Args: read by napoleon
    # the lazy top-level names in docstrings (:func:`camtutor.conv_layers`) link to their defining module
    assert page.locator('article a[href="#camtutor.layers.conv_layers"]').count() >= 1
    for module in ("metrics", "baselines", "images", "data", "models"):  # the optional ones once they exist
        if (ROOT / "camtutor" / f"{module}.py").exists():
            assert page.locator(f'[id="module-camtutor.{module}"]').count() == 1, module
    visit.check_clean("api.html")


def test_cli_page_is_the_parsers_help(visit):
    from camtutor.cli import build_parser

    page = visit.open("cli.html")
    text = page.locator("article").inner_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    assert "usage: camtutor" in text
    for name, sub in commands.items():
        assert f"usage: camtutor {name}" in text, name
        for action in sub._actions:
            for option in action.option_strings:
                assert option in text, (name, option)
    visit.check_clean("cli.html")


def test_benchmarks_page_shows_the_latest_results(visit):
    page = visit.open("benchmarks.html")
    figure = page.locator('article img[src*="benchmark"]')
    assert figure.count() == 1
    assert _broken_images(page) == []
    table_row = next(line for line in (ROOT / "benchmarks/results/benchmark.md").read_text().splitlines()
                     if line.startswith("| ") and "---" not in line and "PASS" in line)
    first_cell = table_row.split("|")[1].strip()
    assert page.locator("article table td", has_text=first_cell).count() >= 1, first_cell
    visit.check_clean("benchmarks.html")

