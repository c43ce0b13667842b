"""Screenshot an experiment page zoomed where the deconv variant's checkerboard is strongest:
    .venv/bin/python scripts/screenshot.py URL OUT.png
(URL as `checkerless demo` prints it). Drives Debian's chromium through Playwright."""

import shutil
import sys

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def main(url: str, out: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_function("[...document.querySelectorAll('#views .viewer img')].length >= 2 && "
                               "[...document.querySelectorAll('#views .viewer img')].every(i => i.complete && i.naturalWidth)",
                               timeout=600_000)
        page.wait_for_function("[...document.querySelectorAll('#spectra img')].every(i => i.complete && i.naturalWidth)")
        page.click("#zoom-worst")
        page.screenshot(path=out, full_page=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
