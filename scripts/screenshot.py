"""Screenshot a page of checkerless once it has everything to show:
    .venv/bin/python scripts/screenshot.py URL OUT.png [--key KEY]
URL as `checkerless demo` prints it (an experiment page: zoomed where the deconv variant's
checkerboard is strongest), or a job page (job.html?id=...). The API key the page asks for:
--key, else $CHECKERLESS_API_KEY (with `checkerless serve`, the file local-key in its data
folder). Drives Debian's chromium through Playwright."""

import argparse
import os
import shutil

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def loaded(selector: str) -> str:
    return (f"[...document.querySelectorAll('{selector}')].length > 0 && "
            f"[...document.querySelectorAll('{selector}')].every(i => i.complete && i.naturalWidth)")


def main(url: str, out: str, key: str | None) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.on("dialog", lambda d: d.accept(key or ""))
        page.goto(url)
        page.wait_for_function(loaded("#views .viewer img") + " && " + loaded("#styles img"), timeout=600_000)
        if "experiment.html" in url:
            page.wait_for_function(loaded("#spectra img"))
            page.wait_for_selector("#spectrum-profile svg, #spectrum-profile p")
            page.click("#zoom-worst")
        page.screenshot(path=out, full_page=True)
        browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--key", default=os.environ.get("CHECKERLESS_API_KEY"))
    a = parser.parse_args()
    main(a.url, a.out, a.key)
