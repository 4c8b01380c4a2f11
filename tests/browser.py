"""A minimal Chrome DevTools Protocol driver over `--remote-debugging-pipe` (no websocket library needed).

Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4. `Browser` opens one page,
sets its viewport, navigates, evaluates JavaScript, presses keys (Input.dispatchKeyEvent: real keyboard events) and
takes screenshots. Used by tests/test_site_browser.py; `python tests/browser.py` rewrites the docs screenshots of the
Encoders page and the front page from the project's filed results (docs/encoders-{1440,390}.png,
docs/leaderboard-{1440,390}.png).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KEYS = {"Enter": (13, "\r"), "Tab": (9, ""), " ": (32, " "), "ArrowDown": (40, "")}


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, binary: str, profile: Path, timeout: float = 60.0):
        self.timeout = timeout
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():  # runs in the child before exec: the pipe ends become (inheritable) fds 3 and 4
            import fcntl

            high_r, high_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 64) for fd in (to_child_r, from_child_w))
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen([binary, *flags], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=fds, close_fds=False)  # noqa: PLW1509 - only way to fds 3/4
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []
        self.session = None
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            if not select.select([self._from_child], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise BrowserError("no reply from chromium in time")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the debugging pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def viewport(self, width: int, height: int) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=width < 600)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout
        while self.js("document.readyState") != "complete" or self.js("location.href") != url:
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load")
            time.sleep(0.05)

    def js(self, expression: str):
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def press(self, key: str) -> None:
        code, text = KEYS[key]
        base = {"key": key, "code": key if len(key) > 1 else "Space", "windowsVirtualKeyCode": code,
                "nativeVirtualKeyCode": code}
        self.send("Input.dispatchKeyEvent", type="keyDown", text=text, **base)
        self.send("Input.dispatchKeyEvent", type="keyUp", **base)

    def screenshot(self, path: Path, full_page: bool = True) -> bytes:
        """A PNG of the page as wide as the viewport; with full_page, as tall as the document."""
        params = {"format": "png"}
        if full_page:
            width = self.js("document.documentElement.clientWidth")
            height = self.js("Math.ceil(document.documentElement.scrollHeight)")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": width, "height": height,
                                                             "scale": 1})
        png = base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])
        Path(path).write_bytes(png)
        return png


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def main() -> int:
    """Rewrite docs/encoders-{1440,390}.png and docs/leaderboard-{1440,390}.png (full-page shots of the Encoders page
    and the front page) from the project's filed results (leaderboard/results/)."""
    import shutil
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from leaderboard.site.render import build_site
    from tests.support import RESULTS_DIR

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        print("error: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    docs = Path(__file__).resolve().parents[1] / "docs"
    with tempfile.TemporaryDirectory() as tmp:
        index = build_site(Path(tmp) / "site", RESULTS_DIR)
        with Browser(binary, Path(tmp) / "profile") as browser:
            for page, name in (("encoders.html", "encoders"), ("index.html", "leaderboard")):
                for width in (1440, 390):
                    browser.viewport(width, 900)
                    browser.open((index.parent / page).resolve().as_uri())
                    browser.screenshot(docs / f"{name}-{width}.png")
                    print(docs / f"{name}-{width}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
