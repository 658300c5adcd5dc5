"""cdp: a headless Chromium driven over the DevTools protocol, for tests of the web console
(test_web.py). It talks over --remote-debugging-pipe (NUL-separated JSON on fds 3 and 4), so
it needs nothing but the standard library and the browser. The browser runs in its own
process group and is registered with abtest, which kills it after each test.

    b = Browser.start(profile_dir)     # raises Unavailable(why) when chromium cannot run
    page = b.open(url)
    page.eval("document.title")        # a JSON-able value, awaited if it is a promise
    page.screenshot(path)
"""
import base64
import json
import os
import select
import shutil
import subprocess
import time

import abtest


class Unavailable(Exception):
    """Chromium is not installed or does not start here (the reason is the message)."""


def find_chromium():
    forced = os.environ.get("ACTOR_CHROMIUM")  # a browser to use instead ("" : look)
    if forced:
        return forced if os.access(forced, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def install_chromium(repo):
    """Installs Debian's chromium through deploy/packages.sh when we are root; quietly does
    nothing otherwise. Returns the browser's path or None."""
    if (find_chromium() or os.environ.get("ACTOR_CHROMIUM") or os.geteuid() != 0 or
            not shutil.which("apt-get")):
        return find_chromium()
    script = ('. "%s/deploy/packages.sh" && '
              'ACTOR_PACKAGES="$ACTOR_BROWSER_PACKAGES" actor_install_packages' % repo)
    try:
        subprocess.run(["bash", "-c", script], timeout=600, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        pass
    return find_chromium()


class Browser:
    def __init__(self, proc, rfd, wfd):
        self.proc, self.rfd, self.wfd = proc, rfd, wfd
        self.buf = b""
        self.next_id = 0
        self.events = []  # (sessionId, method, params) not yet looked at

    @classmethod
    def start(cls, profile, exe=None, timeout=60.0):
        exe = exe or find_chromium()
        if not exe:
            raise Unavailable("chromium is not installed (apt-get install chromium)")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        def child():
            abtest._die_with_parent()
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        argv = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio",
                "--disable-background-networking", "--remote-debugging-pipe",
                "--window-size=1280,860", "--user-data-dir=" + profile, "about:blank"]
        log = open(os.path.join(abtest.tmpdir(), "chromium.log"), "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    close_fds=False, start_new_session=True, preexec_fn=child)
        except OSError as e:
            raise Unavailable("chromium did not start: %s" % e)
        finally:
            log.close()
        proc.log_path = os.path.join(abtest.tmpdir(), "chromium.log")
        abtest._procs.append(proc)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        b = cls(proc, from_chrome_r, to_chrome_w)
        try:
            b.call("Browser.getVersion", timeout=timeout)
        except (AssertionError, OSError) as e:
            tail = abtest.read_log(proc)[-600:]
            abtest.kill_proc(proc)
            raise Unavailable("chromium does not answer over the DevTools pipe (%s): %s"
                              % (e, tail))
        return b

    def _read_one(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no DevTools message in time")
            r, _, _ = select.select([self.rfd], [], [], left)
            if r:
                chunk = os.read(self.rfd, 1 << 20)
                if not chunk:
                    raise AssertionError("chromium closed its DevTools pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=30.0):
        self.next_id += 1
        m = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        os.write(self.wfd, json.dumps(m).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            r = self._read_one(deadline)
            if r.get("id") == self.next_id:
                if "error" in r:
                    raise AssertionError("%s failed: %s" % (method, r["error"]))
                return r.get("result", {})
            if "method" in r:
                self.events.append((r.get("sessionId"), r["method"], r.get("params", {})))

    def open(self, url):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, s["sessionId"])
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Page.navigate", {"url": url})
        return page

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (AssertionError, OSError):
            pass
        abtest.kill_proc(self.proc)
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class Page:
    def __init__(self, browser, session):
        self.b, self.session = browser, session

    def call(self, method, params=None, timeout=30.0):
        return self.b.call(method, params, self.session, timeout)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError("page script failed: %s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expr, timeout=20.0, what=None):
        """Polls a page expression until it is truthy; returns its value."""
        return abtest.wait_until(lambda: self.eval(expr), timeout, what or expr, every=0.1)

    def screenshot(self, path, height=None):
        """A PNG of the viewport, or of its top `height` CSS pixels."""
        params = {"format": "png"}
        if height:
            params["clip"] = {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", params)["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def exceptions(self):
        """Uncaught exceptions the page reported so far."""
        return [p for s, m, p in self.b.events
                if s == self.session and m == "Runtime.exceptionThrown"]

