"""Each lesson in a real JupyterLab, driven by headless Chromium: what a learner sees.

For every ``notebooks/NN_*.ipynb``: open it, *Run › Run All Cells*, wait until the kernel is
idle and every code cell has run, then check

* no cell ended in an error (cells tagged ``raises-exception`` may: they show a trap);
* every widget output rendered as widgets (not as a text fallback or "Error displaying widget");
* for each control panel (a slider and a Run button) of the lesson: moving the slider and pressing
  Run changes the live plot (its image is replaced).

The widget check is also run where it must fail (a JupyterLab with the widget manager turned
off), so a check that cannot fail would show up.

The JupyterLab server and the browser are shared by all lessons of a session (starting them
costs seconds); each lesson gets a fresh page and its kernel is shut down afterwards.

Needs Chromium (Debian: ``apt-get install chromium``; elsewhere point SOCKETLESSONS_CHROMIUM
at a Chrome/Chromium binary). Without it these tests skip, unless
SOCKETLESSONS_REQUIRE_BROWSER=1 (CI) makes that a failure. On failure a screenshot and the
server log land in ``test-artifacts/``. With SOCKETLESSONS_SCREENSHOT=1 (or =NN_name) the first
panel of the first lesson with one (or of that lesson), after its slider was moved and Run pressed,
is saved as ``docs/images/live_plot.png`` (the README's picture).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time
import urllib.request
from typing import Any

import pytest

from .jupyter_harness import ROOT, JupyterLabServer, lesson_id, lessons

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ROOT / "docs" / "images" / "live_plot.png"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: Run All of one lesson, on a busy 2-core machine.
RUN_ALL_TIMEOUT_S = 240
#: One panel run after a slider change (a sweep is bounded by its per-point budgets).
PANEL_RUN_TIMEOUT_S = 120
#: From the click on Run to the button being disabled (the kernel got the click).
RUN_START_TIMEOUT_S = 20
#: From a key press on a slider to its readout showing the new value.
SLIDER_TIMEOUT_S = 3
#: From the end of a run to its last plot update in the page.
SETTLE_TIMEOUT_S = 5
HOW_TO_ENABLE = (
    "headless Chromium is needed for the browser tests: install it with `apt-get install chromium` "
    "(Debian/Ubuntu), or set SOCKETLESSONS_CHROMIUM=/path/to/chrome; set "
    "SOCKETLESSONS_REQUIRE_BROWSER=1 to make a missing browser a failure (CI does)"
)

# The notebook as JupyterLab holds it: kernel status and, per cell, count, tags and outputs.
STATE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.model || !w.sessionContext) return null;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const nodes = Array.from(w.content.node.querySelectorAll('.jp-Cell'));
  return {
    status: kernel ? kernel.status : 'no kernel',
    cells: w.content.model.toJSON().cells.map((c, i) => ({
      type: c.cell_type,
      count: c.execution_count === undefined ? null : c.execution_count,
      tags: (c.metadata && c.metadata.tags) || [],
      source: (Array.isArray(c.source) ? c.source.join('') : c.source).slice(0, 60),
      errors: (c.outputs || []).filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
      widgets: (c.outputs || []).filter(o => o.data && o.data['""" + WIDGET_MIME + """']).length,
      rendered: nodes[i] ? nodes[i].querySelectorAll('.jp-OutputArea-output .jupyter-widgets').length : 0,
      broken: nodes[i] ? /Error displaying widget|model not found/.test(nodes[i].innerText) : false,
    })),
  };
}"""


def chromium_executable() -> str | None:
    """The browser to drive: SOCKETLESSONS_CHROMIUM, Debian's /usr/bin/chromium, or chromium on PATH."""
    for candidate in (
        os.environ.get("SOCKETLESSONS_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("SOCKETLESSONS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SOCKETLESSONS_REQUIRE_BROWSER=1 but {reason}; {HOW_TO_ENABLE}", pytrace=False)
    pytest.skip(f"{reason}; {HOW_TO_ENABLE}")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_executable()
    if executable is None:
        _unavailable("no Chromium found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        # Playwright adds --no-sandbox when running as root (CI); no GPU, no /dev/shm in containers.
        b = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    with JupyterLabServer(tmp_path_factory.mktemp("lab")) as server:
        yield server


def _api(lab: JupyterLabServer, method: str, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{lab.port}/{path}", method=method, headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        body = reply.read()
    return json.loads(body) if body else None


def _shutdown_kernels(lab: JupyterLabServer) -> None:
    """Free the CPU for the next lesson: end every session and kernel this lesson started."""
    for session in _api(lab, "GET", "api/sessions"):
        _api(lab, "DELETE", f"api/sessions/{session['id']}")
    for kernel in _api(lab, "GET", "api/kernels"):
        _api(lab, "DELETE", f"api/kernels/{kernel['id']}")


def _describe(state: dict | None) -> str:
    if state is None:
        return "the notebook is not open"
    lines = [f"kernel: {state['status']}"]
    for i, c in enumerate(state["cells"]):
        if c["type"] == "code":
            lines.append(f"  cell {i} [{c['count']}] {c['source']!r} {c['errors'] or ''}")
    return "\n".join(lines)


def _unexpected_errors(state: dict) -> list[str]:
    return [
        f"cell {i} ({c['source']!r}...): {e}"
        for i, c in enumerate(state["cells"])
        if "raises-exception" not in c["tags"]
        for e in c["errors"]
    ]


def run_all_and_wait(page: Any, lesson: str) -> dict:
    """Run › Run All Cells from the menu; return the notebook state once every code cell has run
    and the kernel is idle. Fails early on an unexpected error."""
    page.locator("#jp-main-statusbar >> text=Idle").first.wait_for(timeout=60_000)
    page.locator("#jp-MainMenu").get_by_text("Run", exact=True).click()
    # Two menu items are named "Run All Cells" (strict-mode error): pick by command id.
    page.locator('li.lm-Menu-item[data-command="runmenu:run-all"]').click()
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(STATE_JS)
        if state is not None and state["status"] == "idle":
            errors = _unexpected_errors(state)
            assert not errors, f"{lesson}: a cell failed in JupyterLab:\n" + "\n".join(errors)
            code = [c for c in state["cells"] if c["type"] == "code" and c["source"].strip()]
            if all(c["count"] is not None for c in code):
                return state
        page.wait_for_timeout(250)
    raise AssertionError(f"{lesson}: Run All did not finish in {RUN_ALL_TIMEOUT_S} s:\n{_describe(state)}")


def check_widgets_rendered(state: dict, lesson: str) -> int:
    """Every cell with widget outputs shows rendered widgets; return how many such cells."""
    cells = [(i, c) for i, c in enumerate(state["cells"]) if c["widgets"]]
    broken = [i for i, c in cells if c["broken"] or not c["rendered"]]
    assert not broken, (
        f"{lesson}: widgets did not render in cells {broken} (text fallback or 'Error displaying widget'): "
        "are ipywidgets and jupyterlab_widgets installed in the same environment as JupyterLab?"
    )
    return len(cells)


def _plot_sources(panel: Any) -> list[str]:
    return panel.locator("img").evaluate_all("imgs => imgs.map(i => i.src)")


def _status_lines(panel: Any) -> str:
    """What the panel says in its text widgets (status line, verdict), for failure messages."""
    return " | ".join(t.strip() for t in panel.locator(".widget-html").all_inner_texts() if t.strip())


def panels_of(page: Any) -> Any:
    """Control panels: widget outputs holding both a slider and a button (``SweepPanel``)."""
    return page.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-slider")).filter(
        has=page.locator(".widget-button")
    )


def move_slider_and_run(page: Any, panel: Any, what: str) -> None:
    """Move the panel's first slider one step, press Run, and wait until the run is over (the Run
    button is enabled again) and the plot's image has been replaced. A panel that shows no image
    (a table or text) must change what it shows instead."""
    panel.scroll_into_view_if_needed()
    slider = panel.locator(".widget-slider").first
    readout = slider.locator(".widget-readout")
    old = readout.text_content()
    for key in ("ArrowLeft", "ArrowRight"):  # one step down, or up if it is at the bottom
        slider.locator(".noUi-handle").first.focus()
        page.keyboard.press(key)
        if _wait_until(page, lambda: readout.text_content() != old, SLIDER_TIMEOUT_S):
            break
    moved = readout.text_content()
    assert moved != old, f"{what}: the slider did not move (still {old!r})"
    page.locator("#jp-main-statusbar >> text=Idle").first.wait_for(timeout=30_000)
    images = _plot_sources(panel)
    shown = images or panel.inner_text()
    buttons = panel.locator(".widget-button")
    run = buttons.filter(has_text="Run")
    (run.first if run.count() else buttons.first).click()

    def changed() -> bool:
        now = _plot_sources(panel) if images else panel.inner_text()
        return bool(now) and now != shown

    def busy() -> bool:
        return panel.locator(".widget-button:disabled").count() > 0

    # The run starts (the button is disabled while it runs) or is over already (the plot changed)...
    _wait_until(page, lambda: busy() or changed(), RUN_START_TIMEOUT_S)
    # ...ends (the button is enabled again)...
    ended = _wait_until(page, lambda: not busy(), PANEL_RUN_TIMEOUT_S)
    # ...and its last image lands soon after.
    if ended and _wait_until(page, changed, SETTLE_TIMEOUT_S):
        page.locator("#jp-main-statusbar >> text=Idle").first.wait_for(timeout=30_000)
        page.wait_for_timeout(300)
        return
    raise AssertionError(
        f"{what}: the {'plot' if images else 'panel'} did not change after moving the slider from {old!r} to "
        f"{moved!r} and pressing Run ({'the run ended' if ended else f'still running after {PANEL_RUN_TIMEOUT_S} s'}). "
        f"The panel says: {_status_lines(panel)!r}"
    )


def _wait_until(page: Any, condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        page.wait_for_timeout(200)


def _save_failure(page: Any, lab: JupyterLabServer, lesson: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(ARTIFACTS / f"browser-{lesson}.png"), full_page=True)
    except Exception:  # the page may be gone; the log still helps
        pass
    (ARTIFACTS / f"browser-{lesson}.log").write_text(lab.log_tail(200))


_screenshot_taken = False


def _wants_screenshot(lesson: str) -> bool:
    """SOCKETLESSONS_SCREENSHOT=1: the first lesson with a panel; =01_client: that lesson."""
    wanted = os.environ.get("SOCKETLESSONS_SCREENSHOT", "")
    return wanted == "1" or (wanted != "" and wanted == lesson)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("lesson", lessons(), ids=lesson_id)
def test_lesson_in_jupyterlab(lesson: pathlib.Path, lab: JupyterLabServer, browser: Any, request: Any) -> None:
    global _screenshot_taken
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    try:
        # A workspace of its own, reset: JupyterLab would otherwise reopen the earlier lessons' tabs.
        page.goto(lab.url(f"lab/workspaces/{lesson.stem}/tree/{lesson.name}?reset"))
        state = run_all_and_wait(page, lesson.stem)
        widget_cells = check_widgets_rendered(state, lesson.stem)
        panels = panels_of(page)
        request.node.user_properties += [("widget_cells", widget_cells), ("panels", panels.count())]
        for n in range(panels.count()):
            move_slider_and_run(page, panels.nth(n), f"{lesson.stem}, panel {n + 1}")
        if panels.count() and _wants_screenshot(lesson.stem) and not _screenshot_taken:
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            panels.first.scroll_into_view_if_needed()
            panels.first.screenshot(path=str(SCREENSHOT))
            _screenshot_taken = True
    except BaseException:
        _save_failure(page, lab, lesson.stem)
        raise
    finally:
        context.close()
        _shutdown_kernels(lab)


@pytest.mark.timeout(300)
def test_the_widget_check_fails_when_widgets_cannot_render(browser: Any, tmp_path: pathlib.Path) -> None:
    """The check above must be able to fail: with JupyterLab's widget manager turned off (what a
    learner sees when ipywidgets' frontend is missing), a slider shows as text, and the check
    says so."""
    import nbformat

    source = tmp_path / "source"
    source.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import ipywidgets\nipywidgets.IntSlider(description='n')")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source / "slider.ipynb")
    with JupyterLabServer(tmp_path / "lab", source, disabled_extensions=("@jupyter-widgets/jupyterlab-manager",)) as lab:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        try:
            page.goto(lab.url("lab/workspaces/no-widgets/tree/slider.ipynb?reset"))
            state = run_all_and_wait(page, "slider")
            assert state["cells"][0]["widgets"] == 1, _describe(state)  # the kernel did send a widget
            with pytest.raises(AssertionError, match="widgets did not render in cells \\[0\\]"):
                check_widgets_rendered(state, "slider")
        finally:
            context.close()
            _shutdown_kernels(lab)


@pytest.mark.parametrize("required", ["", "1"])
def test_missing_browser_skips_with_a_hint_or_fails_in_ci(monkeypatch, required):
    monkeypatch.setenv("SOCKETLESSONS_REQUIRE_BROWSER", required)
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="apt-get install chromium"):
        _unavailable("no Chromium found")


# ---- lesson 09: the learner's own HTTP server, seen by the browser ----------------------------------

LESSON_09 = "09_real_protocols"
#: What the page served by lesson 09's hand-written server says (its PAGE).
LESSON_09_HEADING = "Hello from your socket server"
#: What a JupyterLab needs to proxy: jupyter-server-proxy, which forwards <base>proxy/HOST:PORT/.
PROXY_PREFIX = "/"


def _output_text(state_page: Any, needle: str) -> str:
    """The text of the one output area containing ``needle``."""
    outputs = state_page.locator(".jp-OutputArea-output").filter(has_text=needle)
    assert outputs.count() >= 1, f"no output says {needle!r}"
    return outputs.first.text_content() or ""


def _lesson_09_in_the_browser(lab: JupyterLabServer, browser: Any, workspace: str) -> tuple[str, str, str]:
    """Run lesson 09 in ``lab``; return (iframe src, the heading inside the iframe, what the lesson
    said about the path it used)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    try:
        page.goto(lab.url(f"lab/workspaces/{workspace}/tree/{LESSON_09}.ipynb?reset"))
        run_all_and_wait(page, LESSON_09)
        said = _output_text(page, "the page opens")
        iframe = page.locator(".jp-OutputArea-output iframe").first
        iframe.scroll_into_view_if_needed()
        src = iframe.get_attribute("src") or ""
        # Loaded while the lesson's server ran (the cells after it take seconds; stop_all comes last).
        heading = page.frame_locator(".jp-OutputArea-output iframe").first.locator("h1").inner_text(timeout=10_000)
        return src, heading, said
    except BaseException:
        _save_failure(page, lab, f"{LESSON_09}-{workspace}")
        raise
    finally:
        context.close()
        _shutdown_kernels(lab)


@pytest.mark.timeout(420)
def test_lesson_09_page_opens_in_the_iframe_straight_from_loopback(lab: JupyterLabServer, browser: Any) -> None:
    """In a local JupyterLab (no JUPYTERHUB_SERVICE_PREFIX) the frame loads http://127.0.0.1:PORT/, the
    learner's own server, and the lesson says so."""
    if not (ROOT / "notebooks" / f"{LESSON_09}.ipynb").exists():
        pytest.fail(f"notebooks/{LESSON_09}.ipynb is missing")
    src, heading, said = _lesson_09_in_the_browser(lab, browser, "l09-direct")
    assert src.startswith("http://127.0.0.1:") and src.endswith("/"), src
    assert heading == LESSON_09_HEADING
    assert "straight from 127.0.0.1" in said, said


@pytest.mark.timeout(420)
def test_lesson_09_page_opens_through_jupyter_server_proxy(browser: Any, tmp_path: pathlib.Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a hub: with JUPYTERHUB_SERVICE_PREFIX set for the kernel, the frame goes through
    jupyter-server-proxy (<base>proxy/127.0.0.1:PORT/, on the Jupyter server's own origin) and still
    shows the learner's page."""
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", PROXY_PREFIX)  # inherited by the server and its kernels
    with JupyterLabServer(tmp_path / "lab") as proxied:
        src, heading, said = _lesson_09_in_the_browser(proxied, browser, "l09-proxy")
    assert src.startswith(f"{PROXY_PREFIX}proxy/127.0.0.1:"), src
    assert heading == LESSON_09_HEADING
    assert "through jupyter-server-proxy" in said, said
