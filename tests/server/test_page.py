"""The search page, driven in headless Chromium: type, see results, open a document, see the highlight."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from server.app import create_app
from tests.conftest import write_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
)
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (.ci/run installs them)", allow_module_level=True
    )

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "page-s3cret"
FILLER = "\n\n".join(
    f"Section {n}. The committee met again to discuss the budget for the library's roof repairs "
    f"and the schedule of the autumn book fair 🦉📚, item {n} of the minutes."  # emoji: 2 UTF-16 units
    for n in range(60)
)
TARGET = "Octopuses 🐙 change the colour of their skin in a fraction of a second to hide from predators."
FILES = {
    "notes/minutes.md": "# Minutes\n\n" + FILLER + "\n\n## Aside\n\n" + TARGET + "\n\n" + FILLER,
    "bread.txt": "Sourdough bread rises because wild yeast and bacteria ferment the dough.",
    "tides.txt": "The moon's gravity pulls the oceans, which makes the tides rise and fall twice a day.",
}


@pytest.fixture
def server_url(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> Iterator[str]:
    import uvicorn

    folder = write_files(tmp_path / "docs", FILES)
    build_index(folder, embedder=embedder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(folder / ".semindex", token=TOKEN)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1280,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver: webdriver.Chrome, condition, seconds: float = 20):  # type: ignore[no-untyped-def]
    return WebDriverWait(driver, seconds).until(condition)


def test_type_a_query_open_the_document_and_see_the_chunk(
    server_url: str, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.get(f"{server_url}/#token={TOKEN}")
    assert "token" not in browser.current_url  # taken out of the address at once
    _wait(browser, lambda d: "chunks in 3 documents" in d.find_element(By.ID, "info").text)

    box = browser.find_element(By.ID, "q")
    assert browser.switch_to.active_element == box  # the box has focus on load
    box.send_keys("how do octopus hide from predators")  # no Enter: results come as you type
    first = _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, "#results .result")))
    _wait(browser, lambda d: "results" in d.find_element(By.ID, "status").text)
    assert first.find_element(By.CLASS_NAME, "where").text.startswith("notes/minutes.md:")
    assert "cosine" in first.find_element(By.CLASS_NAME, "score").text
    marks = [m.text.lower() for m in first.find_elements(By.CSS_SELECTOR, ".snippet mark")]
    assert "predators" in marks and "octopuses" in marks  # the query's words, marked where they are
    assert "q=how+do+octopus" in browser.current_url  # the search can be bookmarked

    box.send_keys(Keys.ARROW_DOWN)  # keyboard: down to the first result, Enter opens it
    assert browser.switch_to.active_element == first
    first.send_keys(Keys.ENTER)
    chosen = _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, "#doc-text .chosen")))
    assert TARGET in chosen.text and "Section 59" in browser.find_element(By.ID, "doc-text").text
    in_view = (
        "const r = arguments[0].getBoundingClientRect(), p = arguments[1].getBoundingClientRect();"
        "return r.top >= p.top - 1 && r.top < p.bottom && r.bottom > p.top;"
    )
    pane = browser.find_element(By.ID, "doc-text")
    _wait(browser, lambda d: d.execute_script(in_view, chosen, pane))  # scrolled to the chunk
    assert browser.execute_script("return arguments[0].scrollTop", pane) > 200
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000

    browser.switch_to.active_element.send_keys(Keys.ESCAPE)  # Esc goes back to the results
    _wait(browser, lambda d: not d.find_element(By.ID, "document").is_displayed())

    mode = browser.find_element(By.ID, "mode")  # filters: keyword mode, one extension
    browser.find_element(By.CSS_SELECTOR, "#filters summary").click()
    browser.find_element(By.ID, "ext").send_keys("txt")
    box.clear()
    box.send_keys("sourdough")
    mode.send_keys("keyword")
    _wait(browser, lambda d: [e.text.split(":")[0] for e in d.find_elements(By.CSS_SELECTOR, ".where")]
          == ["bread.txt"])  # fmt: skip

    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
    )
    assert set(origins) <= {server_url}  # nothing fetched from anywhere else: works offline

    browser.set_window_size(390, 844)  # a phone: one column, nothing wider than the screen
    browser.get(f"{server_url}/?q=tides+and+the+moon")
    _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, "#results .result"))).click()
    _wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, "#doc-text .chosen")))
    assert not browser.find_element(By.ID, "results-pane").is_displayed()
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    browser.save_screenshot(str(tmp_path / "phone.png"))
