"""Screenshot a growth report page in Debian's chromium (for docs/growth-report.png).

    bash scripts/demo.sh
    .venv/bin/python transform/report/screenshot.py \
        output/growth_report_dev.html docs/growth-report.png

Uses Playwright (the e2e extra of pyproject.toml) with /usr/bin/chromium (or $CHROMIUM): no
browser download. The page is opened from disk with every request but its own refused, so the
picture shows what a reader offline sees.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from playwright.sync_api import Route, sync_playwright

#: Chromium as root in a container: no sandbox; nothing of its own on the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main(argv: list[str] | None = None) -> int:
    """Write the screenshot; exit 1 on a console error in the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path, help="the report's HTML file")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)
    page_uri = args.page.resolve().as_uri()
    errors: list[str] = []

    def only_the_page(route: Route) -> None:
        if route.request.url == page_uri:
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        try:
            tab = browser.new_page(viewport={"width": args.width, "height": 900})
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.route("**/*", only_the_page)
            tab.goto(page_uri, wait_until="load")
            tab.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length")
            tab.screenshot(path=str(args.png), full_page=True)
        finally:
            browser.close()
    for error in errors:
        print(f"console error: {error}", file=sys.stderr)
    print(f"Screenshot: {args.png}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
