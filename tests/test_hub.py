"""A real classroom: a real JupyterHub, students who log in and follow the teacher's nbgitpuller
link, lessons run in their kernels through the hub, then the teacher's change re-pulled.

The hub is started with the teacher's own file, ``docs/hub/jupyterhub_config.py`` (its two port
fixes included), with the built-in ``dummy`` authenticator and ``simple`` spawner (no system
users), and ``configurable-http-proxy`` from npm. The lessons come from a ``git daemon`` on
127.0.0.1 serving a bare clone of this checkout. Every student goes the path a browser takes:
the login form (cookies), the nbgitpuller link through the hub's OAuth to their own server, the
Contents and Sessions APIs, and the kernel's websocket for every cell of lessons 00, 03 and 09, with the classroom test's
cross-talk probe installed first in each kernel. Then each student edits a notebook (as autosave
would), the teacher pushes a change, and every student re-pulls: the change arrives and the edit
stays. One student also follows the link in the real browser (chromium) and sees lesson 00's
panel rendered.

``SOCKETLESSONS_HUB_STUDENTS`` (default 10) sets the class size: 30 is the rehearsal a teacher
runs on their own hub node (docs/teachers_guide.md). Without ``configurable-http-proxy`` (npm) the
test skips and says how to install it; with ``SOCKETLESSONS_REQUIRE_HUB=1`` (CI) it fails instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from .classroom_probe import PROBE_DUMP, PROBE_INSTALL, Job, cross_talk, port_collisions
from .jupyter_harness import terminate

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docs" / "hub" / "jupyterhub_config.py"
STUDENTS = int(os.environ.get("SOCKETLESSONS_HUB_STUDENTS", "10"))
LESSONS = ["00_welcome", "03_server_loop", "09_real_protocols"]
HOW_TO_ENABLE = ("install the proxy with 'npm install --prefix .venv/node configurable-http-proxy@5' "
                 "(make test does it when npm is present)")
#: Bounded waits, sized for a busy 2-core host (measured: 30 servers up in 46-54 s).
HUB_START_S = 120
SERVER_READY_S = 120 + 6 * STUDENTS
CELL_TIMEOUT_S = 180
PULL_TIMEOUT_S = 180

pytestmark = [pytest.mark.hub, pytest.mark.classroom, pytest.mark.slow]


# ---- the pieces: proxy, ports, git daemon, hub ----------------------------------------------------


def proxy_command() -> str | None:
    """configurable-http-proxy: from ``.venv/node`` (make test installs it there) or on PATH."""
    local = ROOT / ".venv" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")


def _unavailable(reason: str) -> None:
    if os.environ.get("SOCKETLESSONS_REQUIRE_HUB") == "1":
        pytest.fail(f"SOCKETLESSONS_REQUIRE_HUB=1 but {reason}; {HOW_TO_ENABLE}", pytrace=False)
    pytest.skip(f"{reason}; {HOW_TO_ENABLE}")


def free_ports(count: int, first: int = 21000) -> list[int]:
    """``count`` ports below the ephemeral range that nothing listens on now (port 0 never hands
    them out, so no helper server of a lesson can take one in the meantime)."""
    found: list[int] = []
    for port in range(first, first + 2000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError(f"fewer than {count} free ports from {first}")


def wait_for(condition: Any, timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


def _git(*args: str, cwd: pathlib.Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Teacher", "GIT_AUTHOR_EMAIL": "teacher@example.org",
           "GIT_COMMITTER_NAME": "Teacher", "GIT_COMMITTER_EMAIL": "teacher@example.org"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True,
                          timeout=120).stdout


class Hub:
    """A running hub: its URL, the teacher's token, its folder; the git URL of the lessons."""

    def __init__(self, base: pathlib.Path, url: str, token: str, repo_url: str, teacher_clone: pathlib.Path):
        self.base, self.url, self.token, self.repo_url, self.teacher_clone = base, url, token, repo_url, teacher_clone

    def api(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        import urllib.request

        request = urllib.request.Request(f"{self.url}/hub/api/{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            text = reply.read()
        return json.loads(text) if text else None

    def pull_link(self) -> str:
        query = urlencode({"repo": self.repo_url, "branch": "main",
                           "urlpath": "lab/tree/socketlessons/notebooks/00_welcome.ipynb"})
        return f"/hub/user-redirect/git-pull?{query}"


def processes_under(base: pathlib.Path) -> list[Any]:
    """Processes whose command line or working folder is under ``base`` (what the hub started)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd", "environ"]):
        info = proc.info
        text = " ".join(info.get("cmdline") or []) + " " + (info.get("cwd") or "")
        env = info.get("environ") or {}
        if str(base) in text or str(base) in env.get("SOCKETLESSONS_HUB_DIR", "") or str(base) in env.get("HOME", ""):
            if proc.pid != os.getpid():
                found.append(proc)
    return found


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    proxy = proxy_command()
    if proxy is None:
        _unavailable("configurable-http-proxy is not installed")
    pytest.importorskip("jupyterhub", reason="pip install -e '.[test]'")
    pytest.importorskip("nbgitpuller", reason="pip install -e '.[test]'")
    # Short: kernels' Unix sockets live under it (a socket path holds about 100 bytes).
    base = pathlib.Path(tempfile.mkdtemp(prefix="slh-", dir="/tmp"))
    procs: list[subprocess.Popen[Any]] = []
    logs: list[Any] = []
    try:
        # The teacher's repository: a bare clone of this checkout, served by git daemon on loopback.
        served = base / "git"
        served.mkdir()
        _git("clone", "--quiet", "--bare", "--branch", _git("rev-parse", "--abbrev-ref", "HEAD", cwd=ROOT).strip(),
             str(ROOT), str(served / "socketlessons"))
        _git("symbolic-ref", "HEAD", "refs/heads/main", cwd=served / "socketlessons")
        head = _git("rev-parse", "HEAD", cwd=ROOT).strip()
        _git("update-ref", "refs/heads/main", head, cwd=served / "socketlessons")
        git_port, hub_port, api_port, proxy_port, first_student_port = free_ports(5)
        daemon_log = open(base / "git-daemon.log", "wb")  # noqa: SIM115 - closed below
        logs.append(daemon_log)
        procs.append(subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={served}", "--listen=127.0.0.1",
             f"--port={git_port}", str(served)], stdout=daemon_log, stderr=subprocess.STDOUT))
        wait_for(lambda: _answers(git_port), 30, "git daemon did not listen")
        teacher_clone = base / "teacher"
        _git("clone", "--quiet", str(served / "socketlessons"), str(teacher_clone))

        token = secrets.token_hex(16)
        env = {**os.environ, "SOCKETLESSONS_HUB_DIR": str(base / "hub"), "SOCKETLESSONS_HUB_PORT": str(hub_port),
               "SOCKETLESSONS_HUB_API_PORT": str(api_port), "SOCKETLESSONS_HUB_PROXY_API_PORT": str(proxy_port),
               "SOCKETLESSONS_HUB_PROXY": proxy, "SOCKETLESSONS_HUB_SERVICE_TOKEN": token,
               "SOCKETLESSONS_HUB_FIRST_PORT": str(first_student_port + 1),
               "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        hub_log = open(base / "hub.log", "wb")  # noqa: SIM115 - closed below
        logs.append(hub_log)
        hub_proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], cwd=base, env=env,
                                    stdout=hub_log, stderr=subprocess.STDOUT)
        procs.append(hub_proc)
        running = Hub(base, f"http://127.0.0.1:{hub_port}", token, f"git://127.0.0.1:{git_port}/socketlessons",
                      teacher_clone)

        def up() -> bool:
            assert hub_proc.poll() is None, "the hub exited:\n" + _tail(base / "hub.log")
            try:
                running.api("GET", "")
                return True
            except OSError:
                return False

        wait_for(up, HUB_START_S, "the hub did not answer")
        yield running
    finally:
        _teardown(base, procs)
        for log in logs:
            log.close()
        if os.environ.get("SOCKETLESSONS_KEEP_HUB_DIR") != "1":  # keep it to read the hub's log
            shutil.rmtree(base, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _teardown(base: pathlib.Path, procs: list[subprocess.Popen[Any]]) -> None:
    """Servers through the API (done by the test), then the hub (it stops the proxy and any
    server left), then whatever is left by PID. Nothing survives."""
    import psutil

    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                terminate(proc)
    leftovers = processes_under(base)
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(leftovers, timeout=10)
    survivors = [p for p in processes_under(base) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not survivors, f"still running after the hub test: {[p.info.get('cmdline') for p in survivors]}"


# ---- a student, as a browser would be --------------------------------------------------------------


class Student:
    """One student's session: login cookies, their server, a kernel reached over its websocket."""

    def __init__(self, hub: Hub, name: str) -> None:
        import aiohttp

        self.hub, self.name = hub, name
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),  # an IP address host
                                             timeout=aiohttp.ClientTimeout(total=PULL_TIMEOUT_S))
        self.prefix = f"{hub.url}/user/{name}"

    async def close(self) -> None:
        await self.session.close()

    async def login(self) -> None:
        async with self.session.get(f"{self.hub.url}/hub/login") as page:
            assert page.status == 200, page.status
        xsrf = self._cookie("_xsrf")
        async with self.session.post(f"{self.hub.url}/hub/login", data={
                "username": self.name, "password": "any", "_xsrf": xsrf}) as reply:
            assert reply.status == 200, f"{self.name}: login answered {reply.status}"

    def _cookie(self, name: str, path: str = "/hub/") -> str:
        """The cookie ``name`` set for ``path`` (the hub and each user's server set their own ``_xsrf``)."""
        for cookie in self.session.cookie_jar:
            if cookie.key == name and path.startswith(cookie["path"] or "/") and (cookie["path"] or "/") != "/":
                return cookie.value
        return ""

    async def follow_pull_link(self) -> None:
        """The teacher's nbgitpuller link: through the hub's OAuth to this student's git-pull
        page; then the page's progress stream, until nbgitpuller says it finished."""
        async with self.session.get(f"{self.hub.url}{self.hub.pull_link()}") as page:
            assert page.status == 200 and "/git-pull" in str(page.url), f"{self.name}: {page.status} {page.url}"
        await self.pull()

    async def pull(self) -> None:
        query = urlencode({"repo": self.hub.repo_url, "branch": "main"})
        phases = []
        async with self.session.get(f"{self.prefix}/git-pull/api?{query}") as stream:
            assert stream.status == 200, f"{self.name}: git-pull/api answered {stream.status}"
            async for raw in stream.content:
                line = raw.decode(errors="replace").strip()
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    phases.append(event.get("phase"))
                    if event.get("phase") == "error":
                        raise AssertionError(f"{self.name}: nbgitpuller failed: {event}")
                    if event.get("phase") == "finished":
                        return
        raise AssertionError(f"{self.name}: the pull stream ended without 'finished' ({phases})")

    async def _api(self, method: str, path: str, body: Any = None) -> Any:
        own = f"/user/{self.name}/"
        if method != "GET" and not self._cookie("_xsrf", own):
            async with self.session.get(f"{self.prefix}/lab") as page:  # sets the server's _xsrf cookie
                assert page.status == 200, f"{self.name}: /lab answered {page.status}"
        headers = {"X-XSRFToken": self._cookie("_xsrf", own)}
        where, _, query = path.partition("?")
        url = f"{self.prefix}/api/{where}" + (f"?{query}" if query else "")
        async with self.session.request(method, url, json=body, headers=headers) as reply:
            assert reply.status < 300, f"{self.name}: {method} {path} answered {reply.status}: {await reply.text()}"
            return await reply.json() if reply.status != 204 else None

    async def notebook(self, path: str) -> dict:
        return (await self._api("GET", f"contents/{quote(path)}?content=1"))["content"]

    async def save(self, path: str, nb: dict) -> None:
        await self._api("PUT", f"contents/{quote(path)}", {"type": "notebook", "format": "json", "content": nb})

    async def run_lesson(self, lesson: str) -> Job:
        """Open the lesson in a kernel (Sessions API), install the probe, run every code cell
        over the websocket, dump the probe. Errors are kept in the job, not raised."""
        path = f"socketlessons/notebooks/{lesson}.ipynb"
        job = Job(lesson, int(self.name[-2:]))
        t0 = time.monotonic()
        session = await self._api("POST", "sessions", {"path": path, "type": "notebook", "name": "",
                                                        "kernel": {"name": "python3"}})
        kernel_id = session["kernel"]["id"]
        try:
            nb = await self.notebook(path)
            ws_url = self.prefix.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4()}"
            async with self.session.ws_connect(ws_url, max_msg_size=0) as ws:
                await self._execute(ws, PROBE_INSTALL)
                for cell in nb["cells"]:
                    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                    if cell["cell_type"] != "code" or not source.strip():
                        continue
                    error = await self._execute(ws, source, want_error=True)
                    if error:
                        job.error = f"{self.name} {lesson}: a cell failed: {error}\n--- cell:\n{source[:400]}"
                        break
                job.probe = json.loads(await self._execute(ws, PROBE_DUMP))
        finally:
            await self._api("DELETE", f"sessions/{session['id']}")
            job.seconds = time.monotonic() - t0
        return job

    async def _execute(self, ws: Any, code: str, want_error: bool = False) -> str:
        msg_id = uuid.uuid4().hex
        await ws.send_json({"header": {"msg_id": msg_id, "username": self.name, "session": uuid.uuid4().hex,
                                       "msg_type": "execute_request", "version": "5.3"},
                            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                            "content": {"code": code, "silent": False, "store_history": True,
                                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}})
        out, error, replied, idle = [], "", False, False
        deadline = time.monotonic() + CELL_TIMEOUT_S
        while not (replied and idle):
            left = deadline - time.monotonic()
            assert left > 0, f"{self.name}: a cell did not finish in {CELL_TIMEOUT_S} s"
            msg = await ws.receive_json(timeout=left)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                error = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "execute_reply":
                replied = True
                if msg["content"]["status"] == "error" and not error:
                    error = msg["content"].get("ename", "error")
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        if error and not want_error:
            raise AssertionError(f"{self.name}: {error}")
        return error if want_error else "".join(out)


# ---- the class ----------------------------------------------------------------------------------


def names() -> list[str]:
    return [f"student{n:02d}" for n in range(1, STUDENTS + 1)]


class PeakMemory:
    """Samples (every second, in a thread) the resident memory of everything the hub started for
    the students (their servers and kernels): the peak, for sizing a host."""

    def __init__(self, base: pathlib.Path) -> None:
        import threading

        self.base, self.peak_bytes = base, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="hub-memory", daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            total = 0
            for proc in processes_under(self.base / "hub" / "home"):
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def _class_session(hub: Hub) -> dict[str, Any]:
    students = [Student(hub, name) for name in names()]
    try:
        t0 = time.monotonic()
        await asyncio.gather(*(s.login() for s in students))
        await asyncio.gather(*(s.follow_pull_link() for s in students))
        pulled = time.monotonic() - t0
        jobs: dict[str, list[Job]] = {}
        timings: dict[str, float] = {}
        for lesson in LESSONS:  # the whole class on the same lesson at once
            t1 = time.monotonic()
            jobs[lesson] = list(await asyncio.gather(*(s.run_lesson(lesson) for s in students)))
            timings[lesson] = time.monotonic() - t1
        # Each student edits a notebook (what autosave writes), the teacher pushes, all re-pull.
        edited = "socketlessons/notebooks/01_client.ipynb"
        for s in students:
            nb = await s.notebook(edited)
            nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": f"My notes ({s.name})"})
            await s.save(edited, nb)
        note = _teacher_pushes_a_change(hub)
        t2 = time.monotonic()
        await asyncio.gather(*(s.pull() for s in students))
        repulled = time.monotonic() - t2
        after = {s.name: (await s.notebook("socketlessons/notebooks/00_welcome.ipynb"), await s.notebook(edited))
                 for s in students}
        return {"jobs": jobs, "after": after, "note": note, "timings": timings, "pulled": pulled,
                "repulled": repulled}
    finally:
        await asyncio.gather(*(s.close() for s in students))


def _teacher_pushes_a_change(hub: Hub) -> str:
    note = f"Teacher's note {secrets.token_hex(4)}: today we finish lesson 03."
    path = hub.teacher_clone / "notebooks" / "00_welcome.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].insert(0, {"cell_type": "markdown", "id": "teacher-note", "metadata": {}, "source": [note]})
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    _git("commit", "--quiet", "-am", "A note for the class", cwd=hub.teacher_clone)
    _git("push", "--quiet", "origin", "HEAD:main", cwd=hub.teacher_clone)
    return note


def _sources(nb: dict) -> str:
    return "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"])


@pytest.mark.timeout(600 + 60 * STUDENTS)
def test_a_class_on_a_real_hub_pulls_runs_and_repulls(hub: Hub, request: Any) -> None:
    started = time.monotonic()
    hub.api("POST", "users", {"usernames": names()})
    for name in names():  # each POST returns once the spawn is under way (202) or done (201)
        hub.api("POST", f"users/{name}/server", timeout=120)

    def all_ready() -> bool:
        users = {u["name"]: u for u in hub.api("GET", "users")}
        return all(users[n]["servers"].get("", {}).get("ready") for n in names())

    wait_for(all_ready, SERVER_READY_S, f"the {STUDENTS} students' servers were not ready", interval_s=1.0)
    ready = time.monotonic() - started
    with PeakMemory(hub.base) as memory:
        result = asyncio.run(_class_session(hub))

    report = (f"{STUDENTS} students: servers ready in {ready:.0f} s, logged in and pulled in {result['pulled']:.0f} s, "
              + ", ".join(f"{k} in {v:.0f} s" for k, v in result["timings"].items())
              + f", re-pulled in {result['repulled']:.0f} s; peak memory {memory.peak_bytes / STUDENTS / 2**20:.0f} MiB "
              "per student (server + kernel)")
    print(report)
    request.node.user_properties.append(("hub", report))
    for lesson, jobs in result["jobs"].items():
        failed = [j.error for j in jobs if j.error]
        assert not failed, f"{lesson} failed for {len(failed)} of {STUDENTS} students:\n" + "\n\n".join(failed[:3])
        pids = {j.probe["pid"] for j in jobs}
        assert len(pids) == STUDENTS, f"{lesson}: students' kernels shared a process: {pids}"
        collisions = port_collisions(jobs)
        assert not collisions, f"{lesson}: two students' helper servers shared an address:\n" + "\n".join(collisions)
        problems, connects, _accepts = cross_talk(jobs)
        assert connects > 0, f"{lesson}: the probe saw no connection at all"
        assert not problems, f"{lesson}: traffic crossed between students:\n" + "\n".join(problems[:10])
    for name, (welcome, edited) in result["after"].items():
        assert result["note"] in _sources(welcome), f"{name} did not get the teacher's change"
        assert f"My notes ({name})" in _sources(edited), f"{name}'s own edit was lost by the re-pull"

    for name in names():  # stop the servers through the API, as a teacher would
        hub.api("DELETE", f"users/{name}/server", timeout=120)

    def all_stopped() -> bool:
        return all(not u["servers"] for u in hub.api("GET", "users") if u["name"] in names())

    wait_for(all_stopped, 120, "the students' servers did not stop", interval_s=1.0)


def test_one_student_follows_the_link_in_the_browser_and_sees_lesson_00s_panel(hub: Hub) -> None:
    from .test_browser import (
        RUN_ALL_TIMEOUT_S,
        check_widgets_rendered,
        chromium_executable,
    )

    executable = chromium_executable()
    if executable is None:
        if os.environ.get("SOCKETLESSONS_REQUIRE_BROWSER") == "1":
            pytest.fail("SOCKETLESSONS_REQUIRE_BROWSER=1 but no Chromium found", pytrace=False)
        pytest.skip("no Chromium found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from .test_browser import STATE_JS

    name = "browserstudent"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{hub.url}/hub/login")
            page.fill("input[name=username]", name)
            page.fill("input[name=password]", "any")
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url("**/hub/**", timeout=60_000)
            page.goto(f"{hub.url}{hub.pull_link()}", timeout=SERVER_READY_S * 1000)
            page.wait_for_url("**/lab/tree/socketlessons/notebooks/00_welcome.ipynb*", timeout=SERVER_READY_S * 1000)
            page.locator(".jp-Notebook").first.wait_for(timeout=120_000)
            page.locator("#jp-main-statusbar >> text=Idle").first.wait_for(timeout=120_000)
            page.locator("#jp-MainMenu").get_by_text("Run", exact=True).click()
            page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()
            page.locator(".jp-OutputArea .widget-slider").first.wait_for(timeout=RUN_ALL_TIMEOUT_S * 1000)
            state = page.evaluate(STATE_JS)
            if state is not None:  # window.jupyterapp is not exposed on a hub: the slider is the proof
                check_widgets_rendered(state, "00_welcome (hub)")
        finally:
            browser.close()
    hub.api("DELETE", f"users/{name}/server", timeout=120)
