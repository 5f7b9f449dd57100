"""Fixtures of the browser tests: a headless Chromium, and a folder served over HTTP.

These tests run after the book build (``tools/run-tests`` builds the book in
the fast profile and points ``MKDBOOK_BOOK_HTML`` at its ``_build/html``); the
first pytest run of ``tools/run-tests`` leaves this folder out.

The browser is Debian's Chromium with its chromedriver, driven by Selenium
with both paths given explicitly, so Selenium downloads nothing. Each of the
two is checked on its own, and one that is missing is installed with
``apt-get`` (Debian's packages ``chromium`` and ``chromium-driver``); one
that cannot be installed fails the tests with one line saying what to do.
``MKDBOOK_CHROMIUM`` and ``MKDBOOK_CHROMEDRIVER`` name another browser and
driver (a CI runner's Chrome); those are never installed. The browser resolves no host name: pages are
served from 127.0.0.1, so everything a page loads must come with the book.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
DEBIAN_CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Flags for a headless Chromium that makes no network calls of its own, and
#: reaches no host but 127.0.0.1 (every host name fails to resolve).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1024",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


#: Debian's package for each of the two programs.
DEBIAN_PACKAGES = {DEBIAN_CHROMIUM: "chromium", DEBIAN_CHROMEDRIVER: "chromium-driver"}


def _apt_get_install(package: str) -> str | None:
    """Install a Debian package; return why it could not be, or None when it was."""
    if shutil.which("apt-get") is None:
        return "there is no apt-get"
    if os.geteuid() != 0:
        return "apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(install, env=env, capture_output=True).returncode == 0:
        return None
    # A stale package list: read it again, then try once more.
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    failed = subprocess.run(install, env=env, capture_output=True, text=True)
    if failed.returncode == 0:
        return None
    last = (failed.stderr.strip().splitlines() or ["no message"])[-1]
    return f"apt-get install {package} failed: {last}"


def require_program(path: Path, variable: str) -> None:
    """Fail with one line unless ``path`` exists, installing Debian's package for it first.

    Only Debian's own paths are installed; a path named by the environment
    variable ``variable`` must exist as it is.
    """
    if path.exists():
        return
    package = DEBIAN_PACKAGES.get(path)
    why = "it is not Debian's path" if package is None else _apt_get_install(package)
    if why is None and path.exists():
        return
    if why is None:
        why = f"the package {package} did not install it"
    pytest.fail(f"{path}: not found and not installed ({why}); install it, "
                f"or set {variable} to the program's path", pytrace=False)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A headless Chromium driven by Selenium, logging the console's messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = Path(os.environ.get("MKDBOOK_CHROMIUM", DEBIAN_CHROMIUM))
    driver_path = Path(os.environ.get("MKDBOOK_CHROMEDRIVER", DEBIAN_CHROMEDRIVER))
    require_program(binary, "MKDBOOK_CHROMIUM")
    require_program(driver_path, "MKDBOOK_CHROMEDRIVER")
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(driver_path)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` with ``python -m http.server`` on a free port; yield its base URL."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"http.server did not start on port {port}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def server():
    """:func:`serve`, for tests that serve a folder of their own."""
    return serve


@pytest.fixture(scope="session")
def book_html() -> Path:
    """The built book's ``_build/html`` (``MKDBOOK_BOOK_HTML``, set by ``tools/run-tests``)."""
    value = os.environ.get("MKDBOOK_BOOK_HTML")
    if not value:
        pytest.skip("MKDBOOK_BOOK_HTML is not set: tools/run-tests builds the book and sets it")
    folder = Path(value)
    if not (folder / "index.html").is_file():
        pytest.fail(f"{folder}: no index.html; build the book first")
    return folder


@pytest.fixture(scope="session")
def site(book_html: Path) -> Iterator[str]:
    """Base URL of the built book, served over HTTP."""
    with serve(book_html) as url:
        yield url
