"""Debian's chromium, driven through chromium-driver by Selenium, for the console's end-to-end tests.

Nothing is downloaded at run time: the browser and its driver are the system's (``make test`` installs
them where it runs as root on Debian or Ubuntu: scripts/ensure-debian-packages.sh). Without them the tests
skip, saying so.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

#: set to a folder (``make screenshots`` sets docs/console) to keep the pages the tests photograph
SCREENSHOTS_ENV = "ROOST_SCREENSHOTS"


def browser_paths() -> tuple[str, str] | str:
    """(chromium, chromedriver), or why there are none."""
    binary = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if binary and driver:
        return binary, driver
    return (
        "no chromium and chromium-driver on this machine: `make test` installs Debian's packages when it runs "
        "as root with apt-get (scripts/ensure-debian-packages.sh); elsewhere install them to run the console's "
        "browser tests"
    )


def start_browser(width: int = 1366, height: int = 900):
    found = browser_paths()
    if isinstance(found, str):
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for a browser to download
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for chromium's sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--password-store=basic",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=found[1]))


class Page:
    """A few waits and lookups on top of the driver, with failures that say what the page showed."""

    def __init__(self, driver, base_url: str, shots: Path) -> None:
        self.driver, self.base, self.shots = driver, base_url, shots

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def path(self) -> str:
        from urllib.parse import urlparse

        return urlparse(self.driver.current_url).path

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def by_id(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def wait(self, condition, what: str, timeout: float = 60.0, every: float = 0.2):
        """Until ``condition()`` is truthy (exceptions count as not yet); returns its value."""
        deadline = time.time() + timeout
        last: Exception | None = None
        while time.time() < deadline:
            try:
                value = condition()
                if value:
                    return value
            except Exception as err:  # noqa: BLE001 - an element not there yet, or replaced by a live update
                last = err
            time.sleep(every)
        body = self.driver.find_element("tag name", "body").text[:3000]
        raise AssertionError(f"timed out waiting for {what} (last error: {last!r}); the page said:\n{body}")

    def click(self, css: str, what: str = "", timeout: float = 10.0) -> None:
        """Click ``css`` once it is there, again if a live update replaced the element between finding and
        clicking it."""
        self.wait(lambda: self.find(css).click() or True, what or f"a click on {css}", timeout=timeout)

    def fill(self, element_id: str, value: str) -> None:
        field = self.by_id(element_id)
        field.clear()
        field.send_keys(value)

    def screenshot(self, name: str, most: int = 2400) -> None:
        """The whole page (up to ``most`` pixels tall), as the docs show it."""
        self.shots.mkdir(parents=True, exist_ok=True)
        size = self.driver.get_window_size()
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(size["width"], min(most, max(size["height"], height + 120)))
        try:
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))
        finally:
            self.driver.set_window_size(size["width"], size["height"])
