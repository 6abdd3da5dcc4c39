"""A real browser for the console's tests: Debian's chromium (/usr/bin/chromium, `make browser`) driven by
Playwright for Python, launched by its path (no browser download).

- `launch()`: the browser (no sandbox when running as root, as in containers);
- `Watched`: a page whose console messages and page errors are kept, so a test can assert that the
  CSP refused nothing and no script failed;
- `sign_in(page, base, key)`: the sign-in form, by keyboard;
- `check_page(page)`: axe-core (web/node_modules via the vendor copy) injected with `page.evaluate` (the
  CSP blocks script tags a test would add) and run: the serious or critical violations;
- `drop_files(page, selector, files)`: a real drag-and-drop of files onto an element.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request, sync_playwright

CHROMIUM = Path(os.environ.get("FACEGATE_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(__file__).resolve().parents[2] / "central" / "console" / "static" / "vendor" / "axe.min.js"
BLOCKING = ("serious", "critical")


@contextmanager
def launch() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"no chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page with what its console said and the errors its scripts raised."""

    page: Page
    base_url: str = ""
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    """Requests to any other origin than the page's (a CDN would show here): none, offline."""

    @classmethod
    def open(cls, browser: Browser, base_url: str, *, any_certificate: bool = False) -> Watched:
        """A page in a fresh context (its own cookies); `any_certificate` for a test CA's TLS."""
        context = browser.new_context(base_url=base_url, ignore_https_errors=any_certificate)
        watched = cls(context.new_page(), base_url.rstrip("/"))
        watched.page.on("console", watched._console)
        watched.page.on("request", watched._request)
        watched.page.on("pageerror", lambda err: watched.errors.append(str(err)))
        watched.page.on("dialog", watched._dialog)
        return watched

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.base_url + "/", "data:", "blob:")):
            self.elsewhere.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        self.messages.append(f"{message.type}: {message.text}")

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m or "Refused to" in m]

    def close(self) -> None:
        self.page.context.close()


def sign_in(page: Page, key: str) -> None:
    """Sign in through the form with the keyboard only; lands on the fleet page."""
    page.goto("/console/signin")
    page.locator("#key").focus()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/fleet")


def check_page(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page; the serious and critical violations (empty when accessible enough)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}));
        }"""
    )
    return [v for v in violations if v["impact"] in BLOCKING]


def drop_files(page: Page, selector: str, files: Sequence[tuple[str, bytes, str]]) -> None:
    """Drag (name, bytes, MIME type) files onto the element at `selector` and drop them."""
    payload = [{"name": n, "b64": base64.b64encode(d).decode(), "type": t} for n, d, t in files]
    page.evaluate(
        """({selector, files}) => {
            const transfer = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], f.name, {type: f.type}));
            }
            const target = document.querySelector(selector);
            for (const type of ["dragenter", "dragover", "drop"]) {
                const init = {dataTransfer: transfer, bubbles: true, cancelable: true};
                target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        {"selector": selector, "files": payload},
    )
