"""End-to-end test of unit labels in a real headless Chromium (Debian's ``chromium`` via
playwright; same setup as ``tests/test_app_e2e.py``): a small real dissection run of the
bundled scene CNN is served, the Runs page links it to the Units page, the Units page
shows labelled units and their top examples, and the path graph shows the labels on the
nodes and in the hover / selected-node panels. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from apps.fixtures import write_text_dissection_run, write_vision_dissection_run
from apps.graph_view import node_caption

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="Debian chromium is not installed at /usr/bin/chromium "
                                        "(apt-get install -y chromium; `make test` does it)"),
              pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    _, payload, graph = write_vision_dissection_run(runs, "dissect-vis")
    write_text_dissection_run(runs, "dissect-txt")
    port = _free_port()
    log = open(runs.parent / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from apps.server import serve; "
                             "serve(sys.argv[1], port=int(sys.argv[2]))", str(runs), str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"app server exited: {(runs.parent / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
    yield url, payload, graph
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def _cy_eval(page, body: str, arg=None):
    return page.evaluate(
        "([body, arg]) => { const root = document.getElementById('graph-cyto');"
        " const el = [root, ...root.querySelectorAll('*')].find(e => e._cyreg && e._cyreg.cy);"
        " const cy = el._cyreg.cy; return (new Function('cy', 'arg', body))(cy, arg); }", [body, arg])


def _node_xy(page, node_id: str) -> tuple[float, float]:
    pos = _cy_eval(page, "const n = cy.getElementById(arg); const p = n.renderedPosition();"
                         " const r = cy.container().getBoundingClientRect(); return [r.left + p.x, r.top + p.y];", node_id)
    return pos[0], pos[1]


def test_units_page_and_labelled_graph(browser, served):
    url, payload, graph = served
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = ctx.new_page()
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url)
            and not r.url.startswith(("data:", "blob:")) else None)
    try:
        # Runs page -> units link of the dissection run
        page.goto(url + "/")
        page.wait_for_selector(".ib-run-row")
        page.fill("#runs-filter", "dissect-vision")
        page.wait_for_function("() => document.querySelectorAll('.ib-run-row').length == 1")
        page.click(".ib-run-row >> text=units")
        page.wait_for_selector(".ib-unit-row")
        assert "/units?run=dissect-vis" in page.url
        site = "conv1.hook_post"
        units = payload["sites"][site]["units"]
        best = max((u for u in units if u["concept"]), key=lambda u: (u["iou"], -u["unit"]))
        n_lab = sum(bool(u["concept"]) for u in units)
        assert f"{n_lab} of {len(units)} units of {site}" in page.inner_text("#units-count")
        first = page.locator(".ib-unit-row").first.inner_text()
        assert f"c{best['unit']}" in first and best["concept"] in first and f"{best['iou']:.3f}" in first
        page.wait_for_function("(s) => (document.getElementById('units-examples')||{}).innerText?.includes(s)",
                               arg=f"c{best['unit']} · {best['concept']}", timeout=20_000)
        top = payload["sites"][site]["top_examples"][str(best["unit"])][0]
        assert f"{top[1]:.3f}" in page.inner_text("#units-example-table")
        page.screenshot(path=str(ARTIFACTS / "units_vision.png"), full_page=True)
        # filter by concept: every shown row carries it
        concept = best["concept"]
        page.fill("#units-filter", concept)
        want = sum(1 for u in units if u["concept"] and concept in f"{u['concept']} {u['best']} {u['formula']}")
        page.wait_for_function("(n) => document.querySelectorAll('.ib-unit-row').length == n", arg=want)
        labels = page.locator(".ib-unit-label").all_inner_texts()
        assert labels and all(concept in t for t in labels) or want == 0
        # text run: examples with the max-activation token highlighted
        page.goto(url + "/units?run=dissect-txt&site=blocks.0.mlp.hook_post&unit=2")
        page.wait_for_function("() => (document.getElementById('units-examples')||{}).innerText?.includes('hyphen')",
                               timeout=20_000)
        toks = page.locator("#units-examples .ib-tok")
        assert toks.all_inner_texts() == ["self", "-", "made"]
        assert toks.nth(1).get_attribute("data-act") == "0.9"
        page.screenshot(path=str(ARTIFACTS / "units_text.png"), full_page=True)
        # the path graph: labels on nodes, layers as rows, logits on top
        page.goto(url + "/graph?run=dissect-vis")
        page.wait_for_function("() => (document.getElementById('graph-summary')||{}).innerText?.includes('showing')",
                               timeout=20_000)
        page.focus("#graph-slider [role=slider]")
        page.keyboard.press("End")  # every edge
        page.wait_for_function("(s) => document.getElementById('graph-summary').innerText.startsWith(s)",
                               arg=f"showing {len(graph['edges'])} of", timeout=20_000)
        page.wait_for_timeout(800)
        facts = page.inner_text(".ib-header")
        assert "model scene-cnn" in facts and "synthetic-scenes" in facts and "logit[house]" in facts
        shown = set(_cy_eval(page, "return cy.nodes().filter(n => n.data('type') !== 'axis').map(n => n.id())"))
        labelled = [n for n in graph["nodes"] if n.get("label") and n["type"] == "neuron" and n["id"] in shown]
        assert labelled
        for n in labelled:
            assert _cy_eval(page, "return cy.getElementById(arg).data('label')", n["id"]) == node_caption(n)
        axis = _cy_eval(page, "return cy.nodes('.axis').map(n => n.data('label'))")
        assert "logits" in axis and "conv3" in axis
        y = {nid: _node_xy(page, nid)[1] for nid in ("logits.house", labelled[0]["id"])}
        assert y["logits.house"] < y[labelled[0]["id"]]
        n = max(labelled, key=lambda n: n["layer"])
        x0, y0 = _node_xy(page, n["id"])
        page.mouse.move(x0, y0)
        page.wait_for_function("(s) => (document.getElementById('graph-hover')||{}).innerText?.includes(s)",
                               arg=f"label {n['label']}", timeout=20_000)
        page.mouse.click(x0, y0)
        page.wait_for_selector("#graph-node-label", timeout=20_000)
        assert page.inner_text("#graph-node-label") == n["label"]
        page.screenshot(path=str(ARTIFACTS / "graph_dissection.png"), full_page=True)
        page.click("#graph-node-units-link")
        try:
            page.wait_for_function("(s) => (document.getElementById('units-examples')||{}).innerText?.includes(s)",
                                   arg=f"c{n['index']}", timeout=20_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "units_from_graph.png"), full_page=True)
        assert "/units?run=dissect-vis&site=conv" in page.url
        assert not outside, f"the page fetched from outside the app: {outside[:5]}"
    finally:
        ctx.close()
