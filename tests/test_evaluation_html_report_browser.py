"""The HTML report in a real browser: headless Chromium (Debian's chromium and chromium-driver),
driven by selenium. A demo-style page of two tiny images is opened from file://.

Without a browser the test skips, saying why (pytest -rs prints it); with
CAR_TF_REQUIRE_BROWSER=1 (.ci/run sets it once it has installed one) it fails instead. The
screenshot goes to $CAR_TF_TEST_ARTIFACTS (default: the test's tmp folder).
"""

import io
import os
import shutil
import tempfile

import numpy as np
import pytest
from PIL import Image

from evaluation_fixtures import demo_page, edsr_model  # noqa: F401 (fixtures)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--window-size=1400,1800",
)


def _missing(reason):
    if os.environ.get("CAR_TF_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CAR_TF_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[test]')")
    binary = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        _missing("no chromium and chromedriver on PATH "
                 "(Debian: apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="car_tf_chromium_")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _pixels(element):
    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"))


def _artifact_dir(tmp_path):
    folder = os.environ.get("CAR_TF_TEST_ARTIFACTS") or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    return folder


def test_demo_page_in_chromium(browser, demo_page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    path, report = demo_page
    browser.get("file://" + os.path.abspath(path))
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && "
        "Array.from(document.images).every(image => image.complete)"))

    # Every image loaded: the strip (7 pictures per image) and the viewer's two.
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(images) == 2 * (7 + 2)
    assert all(width > 0 for _, width in images), images

    article = browser.find_elements(By.CSS_SELECTOR, "article.image")[1]  # c.png, 64x48
    stage = article.find_element(By.CSS_SELECTOR, ".stage")
    browser.execute_script("arguments[0].scrollIntoView()", article)
    Select(article.find_element(By.CSS_SELECTOR, ".pick-before")).select_by_index(0)  # HR
    Select(article.find_element(By.CSS_SELECTOR, ".pick-after")).select_by_index(2)  # CAR LR
    after = article.find_element(By.CSS_SELECTOR, ".stage img.after")
    # LR pixels are drawn by nearest neighbour.
    assert after.value_of_css_property("image-rendering") == "pixelated"
    assert "car LR" in after.get_attribute("alt")

    # The slider moves with the arrow keys, and what is shown changes with it.
    slider = article.find_element(By.CSS_SELECTOR, "input.split")
    shown_before = _pixels(stage)
    clip_before = after.value_of_css_property("clip-path")
    slider.send_keys(Keys.ARROW_LEFT * 20)
    assert slider.get_attribute("value") == "30"
    assert after.value_of_css_property("clip-path") != clip_before
    assert "30%" in after.value_of_css_property("clip-path")
    shown_after = _pixels(stage)
    assert shown_before.shape == shown_after.shape
    changed = np.any(shown_before != shown_after, axis=-1)
    assert changed.mean() > 0.02, changed.mean()
    # Only the strip between the old and the new divider changes.
    columns = np.flatnonzero(changed.any(axis=0)) / changed.shape[1]
    assert columns.min() > 0.25 and columns.max() < 0.55, (columns.min(), columns.max())

    # The zoom follows the mouse, and keeps its place when another picture is chosen.
    from selenium.webdriver.common.action_chains import ActionChains

    viewer = article.find_element(By.CSS_SELECTOR, ".viewer")
    zoom = article.find_element(By.CSS_SELECTOR, "canvas.zoom-after")
    width = stage.size["width"]
    ActionChains(browser).move_to_element_with_offset(stage, -width // 4, 0).perform()
    position = (viewer.get_attribute("data-zoom-x"), viewer.get_attribute("data-zoom-y"))
    assert position == ("16", "24"), position  # a quarter across the 64x48 image, mid-height
    caption = zoom.find_element(By.XPATH, "..").find_element(By.TAG_NAME, "figcaption").text
    zoomed_lr = _pixels(zoom)
    Select(article.find_element(By.CSS_SELECTOR, ".pick-after")).select_by_index(6)  # car + edsr
    assert (viewer.get_attribute("data-zoom-x"), viewer.get_attribute("data-zoom-y")) == position
    new_caption = zoom.find_element(By.XPATH, "..").find_element(By.TAG_NAME, "figcaption").text
    assert new_caption.split(",", 1)[1] == caption.split(",", 1)[1]  # same HR pixels
    assert "car + edsr" in new_caption
    assert np.any(_pixels(zoom) != zoomed_lr)
    assert zoomed_lr.std() > 0  # the zoom drew a picture, not a blank canvas

    screenshot = os.path.join(_artifact_dir(tmp_path), "html_report.png")
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(screenshot) and os.path.getsize(screenshot) > 0
    print(f"screenshot: {screenshot}")

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not severe, severe
