"""A real headless browser for the tests that are about what a person sees: Debian's `chromium`, driven over
the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages ended by NUL on fds 3 and 4), so no
WebSocket client or extra package is needed.

Fonts are chosen by a fontconfig file of the test's own (`FONTCONFIG_FILE`): `fonts="latin"` gives a machine
with every installed font that has no Japanese glyph (no CJK font at all), `fonts="system"` every font installed
(Debian's fonts-noto-cjk among them: `.ci/run` installs it with chromium).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe"]


def chromium() -> str:
    """The browser's path; a missing one fails the test with what to install."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("these tests need Debian's chromium (and fonts-noto-cjk): apt-get install chromium "
                         "fonts-noto-cjk, as .ci/run does")


FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")


def _has_kana(path: Path) -> bool:
    from fontTools.ttLib import TTCollection, TTFont

    try:
        faces = TTCollection(str(path), lazy=True).fonts if path.suffix.lower() == ".ttc" else [
            TTFont(str(path), lazy=True)]
        return any(0x3042 in (f.getBestCmap() or {}) for f in faces)
    except Exception:  # noqa: BLE001 — a font fontTools cannot read is left out either way
        return True


def _latin_fonts(folder: Path) -> Path:
    """A folder of links to every installed font without Japanese glyphs: a machine with no CJK font."""
    out = folder / "latin-fonts"
    out.mkdir()
    for root in FONT_DIRS:
        for i, path in enumerate(sorted(Path(root).rglob("*")) if Path(root).is_dir() else []):
            if path.suffix.lower() in (".ttf", ".otf", ".ttc") and not _has_kana(path):
                (out / f"{i}-{path.name}").symlink_to(path)
    if not any(out.iterdir()):
        raise AssertionError("no Latin font is installed (Debian's chromium pulls fonts-liberation or -dejavu)")
    return out


def _fontconfig(folder: Path, fonts: str) -> Path:
    dirs = [str(_latin_fonts(folder))] if fonts == "latin" else list(FONT_DIRS)
    conf = folder / "fonts.conf"
    conf.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
                    + "".join(f"  <dir>{d}</dir>\n" for d in dirs)
                    + '  <include ignore_missing="yes">/etc/fonts/conf.d</include>\n'  # generic names, no fonts
                    + f"  <cachedir>{folder / 'fc-cache'}</cachedir>\n</fontconfig>\n")
    return conf


def _high(fd: int) -> int:
    import fcntl

    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class Browser:
    """One headless chromium with a fresh profile; `open(path)` loads a page and returns its `Page`."""

    def __init__(self, fonts: str = "system", width: int = 1100, height: int = 900):
        self._dir = Path(tempfile.mkdtemp(prefix="karuku-browser-"))
        env = dict(os.environ, FONTCONFIG_FILE=str(_fontconfig(self._dir, fonts)))
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        # above 9, so the redirections below never close or overwrite each other
        to_child, from_child = (_high(fd) for fd in (to_child, from_child))

        # the browser reads commands on fd 3 and writes replies on fd 4
        args = [chromium(), *FLAGS, f"--user-data-dir={self._dir / 'profile'}", f"--window-size={width},{height}"]
        self._proc = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_child} 4>&{from_child} {to_child}<&- {from_child}>&-', "-", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            pass_fds=(to_child, from_child))
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.width, self.height = width, height

    def send(self, method: str, session: str | None = None, **params):
        """One DevTools command; its result (events that arrive meanwhile are kept for `wait_event`)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise AssertionError("chromium closed the DevTools pipe (did it start?)")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, path: str | Path) -> Page:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        page.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        page.send("Page.navigate", url=Path(path).resolve().as_uri())
        page.evaluate("new Promise(r => { if (document.readyState === 'complete') r(); "
                      "else addEventListener('load', () => r()); }).then(() => document.fonts.ready).then(() => 1)")
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except AssertionError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """A loaded page: run JavaScript in it, take screenshots of a region, ask which fonts drew a node."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, **params):
        return self.browser.send(method, self.session, **params)

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression (promises awaited)."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"JavaScript failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def screenshot(self, x: float, y: float, width: float, height: float) -> bytes:
        """PNG bytes of a region of the page (CSS pixels, scale 1)."""
        clip = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", format="png", clip=clip,
                                          captureBeyondViewport=True)["data"])

    def fonts(self, selector: str) -> dict[str, int]:
        """The fonts that drew the text of the first node matching `selector`: family name -> glyphs drawn."""
        self.send("DOM.enable")
        self.send("CSS.enable")
        root = self.send("DOM.getDocument", depth=-1)["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise AssertionError(f"no node matches {selector!r}")
        used = self.send("CSS.getPlatformFontsForNode", nodeId=node)["fonts"]
        return {f["familyName"]: f["glyphCount"] for f in used}
