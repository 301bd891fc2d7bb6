"""The explorer and the executed notebooks in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by selenium, against JupyterLab and Voila started here on free loopback ports.

    make test-browser                          # installs the browser as root if missing, then runs this file
    make test-browser SHOTS=docs/figures       # keeps the screenshots there (default build/screenshots)

The notebooks are copied into a scratch folder that the servers serve, so nothing in the checkout is
modified by a kernel or by autosave. In JupyterLab the explorer reads smoke-scale table2 runs this file trains
first (keeping a snapshot after epoch 1, so the epoch slider shows); as a Voila page it reads the committed
results, as on a fresh clone (SAR_EXPLORE_RESULTS).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra (make setup)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("no chromium/chromedriver: `make test-browser` installs Debian's", allow_module_level=True)
SHOTS = Path(os.environ.get("SAR_SCREENSHOTS", REPO / "build" / "screenshots"))
TOKEN = "sar-browser-test"
# what a notebook shows when a widget fails: its model's repr, or the widget manager's error (ipywidgets 8
# draws it as "Click to show javascript error.", with the class widget-error)
BROKEN = ("Error displaying widget", "Click to show javascript error", "HBox(", "VBox(", "Model not found")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cmd: list[str], url: str, cwd: Path, results: Path) -> subprocess.Popen:
    env = {**os.environ, "SAR_EXPLORE_RESULTS": str(results), "JUPYTER_TOKEN": TOKEN}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    for _ in range(120):
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"{cmd[2]} exited: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"nothing answered at {url}")


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """table2 at smoke scale (baseline and SAR + no-skip, two seeds, 2 epochs of 2 steps), trained here keeping
    a snapshot after epoch 1."""
    from sarlib.study import plan
    from sarlib.train import train

    os.environ.setdefault("SARLIB_CACHE", str(tmp_path_factory.mktemp("cache")))
    root = tmp_path_factory.mktemp("smoke") / "results"
    for run in plan("table2", profile="smoke", runs_root=root / "runs"):
        train(run.config.replace(max_steps_per_epoch=2, keep_checkpoints="1"))
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory, smoke_results):
    """A scratch folder holding copies of explore.ipynb and the executed table2 notebook, served by
    JupyterLab (the explorer on the smoke runs) and by Voila (on the committed results)."""
    root = tmp_path_factory.mktemp("site")
    shutil.copy(REPO / "notebooks" / "explore.ipynb", root)
    shutil.copy(REPO / "results" / "notebooks" / "table2.ipynb", root / "table2-executed.ipynb")
    lab_port, voila_port = _free_port(), _free_port()
    lab = _serve([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={lab_port}",
                  "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
                  "--LabApp.expose_app_in_browser=True", f"--LabApp.app_settings_dir={REPO / '.jupyter-settings'}",
                  "--allow-root"],
                 f"http://127.0.0.1:{lab_port}/lab?token={TOKEN}", root, smoke_results)
    voila = _serve([sys.executable, "-m", "voila", "explore.ipynb", "--no-browser", f"--port={voila_port}",
                    "--Voila.ip=127.0.0.1", f"--ServerApp.token={TOKEN}"],
                   f"http://127.0.0.1:{voila_port}/?token={TOKEN}", root, REPO / "results")
    yield dict(lab=f"http://127.0.0.1:{lab_port}", voila=f"http://127.0.0.1:{voila_port}")
    for proc in (lab, voila):
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _wait(driver, what, seconds=180):
    return WebDriverWait(driver, seconds, poll_frequency=0.25).until(lambda d: what(d))


def _picture(driver) -> str:
    """The explorer's drawing: the first widget image's source (a new blob URL per drawing), "" until an
    image has loaded."""
    images = driver.find_elements(By.CSS_SELECTOR, "img.widget-image")
    if not images or not driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", images[0]):
        return ""
    return images[0].get_attribute("src")


def _no_broken_widget(driver) -> None:
    text = driver.find_element(By.TAG_NAME, "body").text
    assert not [b for b in BROKEN if b in text], [b for b in BROKEN if b in text]
    assert not driver.find_elements(By.CSS_SELECTOR, ".widget-error, .jp-ErrorWidget")
    errors = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type*='stderr'], "
                                                   ".jp-RenderedText[data-mime-type*='error']")
    assert not [e.text for e in errors if "Traceback" in e.text or "Error" in e.text], [e.text for e in errors]


def _select(driver, description: str) -> Select:
    label = driver.find_element(By.XPATH, f"//label[normalize-space()='{description}']")
    return Select(label.find_element(By.XPATH, "following-sibling::select"))


def _slider_handle(driver, description: str):
    return driver.find_element(By.XPATH, f"//div[contains(@class, 'widget-slider')][.//label[normalize-space()="
                                         f"'{description}']]//div[contains(@class, 'noUi-handle')]")


def _exercise_explorer(driver, name: str, epochs: bool = False) -> None:
    """The widgets rendered; a new head and a new image each redraw; two different runs side by side; with
    `epochs`, the epoch slider shows and a kept epoch redraws."""
    _wait(driver, lambda d: _picture(d) != "")
    _no_broken_widget(driver)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    left, right = _select(driver, "left run"), _select(driver, "right run")
    assert left.first_selected_option.text.startswith("baseline, seed 0")
    assert right.first_selected_option.text.startswith("sar+no-skip, seed 0")
    before = _picture(driver)
    _select(driver, "head").select_by_visible_text("0")
    _wait(driver, lambda d: _picture(d) not in ("", before), seconds=30)
    after_head = _picture(driver)
    handle = _slider_handle(driver, "image")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    _wait(driver, lambda d: _picture(d) not in ("", after_head), seconds=30)
    _no_broken_widget(driver)
    driver.save_screenshot(str(SHOTS / f"{name}-head0-image1.png"))
    shown = [e for e in driver.find_elements(By.XPATH, "//label[normalize-space()='epoch']") if e.is_displayed()]
    assert bool(shown) == epochs  # hidden where the runs kept no snapshots
    if epochs:
        after_image = _picture(driver)
        handle = _slider_handle(driver, "epoch")
        handle.click()
        handle.send_keys(Keys.ARROW_LEFT)  # from "final" to epoch 1
        _wait(driver, lambda d: _picture(d) not in ("", after_image), seconds=30)
        _no_broken_widget(driver)
        driver.save_screenshot(str(SHOTS / f"{name}-epoch1.png"))


def test_the_explorer_renders_and_redraws_in_jupyterlab(site, browser):
    browser.get(f"{site['lab']}/lab/tree/explore.ipynb?token={TOKEN}")
    _wait(browser, lambda d: d.execute_script(
        "const a = window.jupyterapp; return a && a.shell.currentWidget && "
        "a.shell.currentWidget.sessionContext && a.shell.currentWidget.sessionContext.session && "
        "a.shell.currentWidget.sessionContext.session.kernel && "
        "a.shell.currentWidget.sessionContext.session.kernel.connectionStatus === 'connected'"))
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _exercise_explorer(browser, "explore-lab", epochs=True)


def test_the_explorer_is_a_standalone_page_with_voila(site, browser):
    browser.get(f"{site['voila']}/?token={TOKEN}")
    _exercise_explorer(browser, "explore-voila")


def test_an_executed_results_notebook_shows_its_figures(site, browser):
    browser.get(f"{site['lab']}/lab/tree/table2-executed.ipynb?token={TOKEN}")
    figures = lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, ".jp-RenderedImage img")  # noqa: E731
                         if d.execute_script("return arguments[0].naturalWidth", i) > 100]
    _wait(browser, lambda d: len(figures(d)) >= 1, seconds=120)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Traceback" not in text and "rows x" not in text  # figures, not errors or truncated frames
    browser.save_screenshot(str(SHOTS / "table2-executed.png"))
    # opening it changed nothing (its kernelspec is the installed kernel's), so autosave has nothing to write;
    # asked of its own tab (the lab also restores explore.ipynb's), once its kernel is connected
    tab = ("const w = Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && "
           "w.context.path.endsWith('table2-executed.ipynb'));")
    _wait(browser, lambda d: d.execute_script(tab + "return !!(w && w.sessionContext.session && w.sessionContext.session"
                                              ".kernel && w.sessionContext.session.kernel.connectionStatus === "
                                              "'connected')"), seconds=120)
    time.sleep(2)  # the kernel's info reply, which is what would rewrite the metadata, has arrived by now
    assert browser.execute_script(tab + "return w.context.model.dirty") is False
    assert json.loads((REPO / "results" / "notebooks" / "table2.ipynb").read_text())["cells"]
