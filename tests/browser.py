"""A real browser for the tests that look at what a person sees: Playwright driving Debian's
Chromium (``make test`` installs the package; no browser is downloaded)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

FLAGS = [  # a closed network: no background connections, no sandbox as root
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: make test installs Debian's chromium package"
    return found


@contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const images = [...document.images];
  return {
    width,
    page: document.documentElement.scrollWidth,
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    tables: [...document.querySelectorAll("table")].map(t => Math.ceil(t.getBoundingClientRect().right)),
    wrapped: [...document.querySelectorAll("td span.n")].filter(s => s.getClientRects().length > 1)
                                                        .map(s => s.textContent),
    first_screen: window.innerHeight,
    summary: (document.querySelector("table.summary") || {getBoundingClientRect: () => ({top: 1e9})})
               .getBoundingClientRect().top,
    badge: Math.min(1e9, ...[...document.querySelectorAll("table.summary .b")]
                              .map(b => b.getBoundingClientRect().bottom)),
    badges: [...document.querySelectorAll("table.summary .b")].map(b => {
              const box = b.getBoundingClientRect();
              return {bottom: box.bottom, height: box.height};
            }),
  };
}"""
"""What a reader would see break in a page: its width against the window's, images that did not
load, tables reaching past the window, and numbers broken across lines (``span.n`` with more
than one line box); and where the answer is: the tops of the summary table and of its first
verdict badge, against the first screen's height; every summary badge's bottom and height (a
badge broken over two lines is twice as tall as the others)."""
