"""The browser tests find Chromium and its driver each on its own, and install only what is missing."""

from __future__ import annotations

import subprocess

import pytest

import conftest


@pytest.fixture
def debian(monkeypatch, tmp_path):
    """Debian's two paths moved into ``tmp_path``; apt-get 'installs' a package by creating its file."""
    chromium, driver = tmp_path / "chromium", tmp_path / "chromedriver"
    monkeypatch.setattr(conftest, "DEBIAN_PACKAGES", {chromium: "chromium", driver: "chromium-driver"})
    monkeypatch.setattr(conftest.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(conftest.os, "geteuid", lambda: 0)
    installed: list[str] = []

    def apt_get(command, **kwargs):
        if command[1] == "install":
            package = command[-1]
            installed.append(package)
            {"chromium": chromium, "chromium-driver": driver}[package].touch()
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(conftest.subprocess, "run", apt_get)
    return chromium, driver, installed


def test_a_browser_without_its_driver_gets_the_driver_alone(debian):
    chromium, driver, installed = debian
    chromium.touch()
    conftest.require_program(chromium, "MKDBOOK_CHROMIUM")
    conftest.require_program(driver, "MKDBOOK_CHROMEDRIVER")
    assert installed == ["chromium-driver"] and driver.exists()


def test_a_driver_that_cannot_be_installed_fails_in_one_line(debian, monkeypatch):
    chromium, driver, installed = debian
    monkeypatch.setattr(conftest.os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.fail.Exception) as failure:
        conftest.require_program(driver, "MKDBOOK_CHROMEDRIVER")
    message = str(failure.value)
    assert "\n" not in message and installed == []
    assert message.startswith(f"{driver}: not found and not installed (apt-get needs root)")
    assert "MKDBOOK_CHROMEDRIVER" in message


def test_a_named_browser_is_never_installed(debian, tmp_path):
    *_, installed = debian
    missing = tmp_path / "google-chrome"
    with pytest.raises(pytest.fail.Exception, match="it is not Debian's path.*MKDBOOK_CHROMIUM"):
        conftest.require_program(missing, "MKDBOOK_CHROMIUM")
    assert installed == []
