"""End-to-end tests of the Dash app in a real headless Chromium (Debian's ``chromium``,
driven by playwright; never ``playwright install``).

The app server runs in a subprocess on a free 127.0.0.1 port over a runs directory made
of small runs in the on-disk formats (plus one graph computed by interpbench's own EAP
code on the tiny model, see ``test_real_eap_graph_page``). Screenshots go to
``test-artifacts/`` (git-ignored) for review.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from apps.fixtures import result_record, synthetic_graph, tiny_graph, tiny_scores, write_run

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="Debian chromium is not installed at /usr/bin/chromium "
                                        "(apt-get install -y chromium; `make test` does it)"),
              pytest.mark.timeout(300)]

FEATURES = [{"feature": 7, "explanation": "the token ' Mary' after 'When'", "explainer": "test-explainer",
             "scores": {"detection": {"score": 0.81, "random_control": 0.5}, "fuzzing": {"score": 0.7,
                                                                                      "random_control": 0.52}},
             "histogram": {"edges": [0, 1, 2, 3, 4], "counts": [120, 30, 8, 2]},
             "examples": [{"tokens": ["When", " Mary", " and", " John"], "acts": [0.0, 3.5, 0.2, 0.0]},
                          {"tokens": ["Then", " Mary", " left"], "acts": [0.1, 2.0, 0.0]}]},
            {"feature": 9, "explanation": "closing brackets", "explainer": "test-explainer", "scores": {},
             "examples": []}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    write_run(d, "tiny", result_record("tiny", scores=tiny_scores()), tiny_graph())
    g2 = tiny_graph()
    g2["edges"] = [e for e in g2["edges"] if e["target"] != "logits" or e["source"] == "a1.h1"]
    g2["edges"].append({"source": "m0", "target": "logits", "score": 0.9, "method": "eap", "ablation": "patch"})
    write_run(d, "tiny2", result_record("tiny2", created="2026-11-24T11:00:00"), g2)
    write_run(d, "big", result_record("big", recipe="synthetic_5k", created="2026-11-24T10:00:00"), synthetic_graph())
    write_run(d, "feat", result_record("feat", kind="sae_labels", recipe="label_features", graph=False), None, FEATURES)
    write_run(d, "patching-only", result_record("patching-only", kind="activation_patching", recipe="ioi_resid",
                                                scores=tiny_scores(), graph=False))
    bad = write_run(d, "truncated", result_record("truncated", recipe="broken"), tiny_graph())
    (bad / "graph.json").write_text(json.dumps(tiny_graph())[:200])
    big = tiny_graph()
    big["metadata"]["pad"] = "x" * (5 * 1024 * 1024)
    write_run(d, "oversized", result_record("oversized", recipe="huge"), big)
    outside = tmp_path_factory.mktemp("outside")
    write_run(outside, "secret", result_record("secret"), tiny_graph())
    os.symlink(outside / "secret", d / "escape")
    return d


@pytest.fixture(scope="module")
def server(runs):
    port = _free_port()
    log = open(runs.parent / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from apps.server import serve; "
                             "serve(sys.argv[1], port=int(sys.argv[2]), max_file_mb=4.0)", str(runs), str(port)],
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
    yield url, proc
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


@pytest.fixture()
def page(browser, server):
    url, _ = server
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    pg = ctx.new_page()
    pg.requests = []
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.base = url
    yield pg
    outside = [r for r in pg.requests if not r.startswith(url) and not r.startswith("data:") and not r.startswith("blob:")]
    ctx.close()
    assert not outside, f"the page fetched from outside the app: {outside[:5]}"


def _cy_eval(page, body: str, arg=None):
    """Evaluate JS with ``cy`` bound to the cytoscape instance of the graph page."""
    return page.evaluate(
        "([body, arg]) => { const root = document.getElementById('graph-cyto');"
        " const el = [root, ...root.querySelectorAll('*')].find(e => e._cyreg && e._cyreg.cy);"
        " const cy = el._cyreg.cy; return (new Function('cy', 'arg', body))(cy, arg); }", [body, arg])


def _wait_summary(page, contains: str, timeout: float = 20_000) -> str:
    page.wait_for_function("(s) => (document.getElementById('graph-summary')||{}).innerText?.includes(s)",
                           arg=contains, timeout=timeout)
    page.wait_for_timeout(600)  # cytoscape re-runs the preset layout (fit) 100 ms after elements change
    return page.inner_text("#graph-summary")


def _node_xy(page, node_id: str) -> tuple[float, float]:
    pos = _cy_eval(page, "const n = cy.getElementById(arg); const p = n.renderedPosition();"
                         " const r = cy.container().getBoundingClientRect(); return [r.left + p.x, r.top + p.y];", node_id)
    return pos[0], pos[1]


def _wait_pinned(page, node_id: str):
    page.wait_for_function(
        "(id) => { const root = document.getElementById('graph-cyto');"
        " const el = [root, ...root.querySelectorAll('*')].find(e => e._cyreg && e._cyreg.cy);"
        " return el._cyreg.cy.getElementById(id).hasClass('pinned'); }", arg=node_id, timeout=20_000)
    page.wait_for_timeout(600)


def test_runs_page_lists_filters_and_opens(page):
    page.goto(page.base + "/")
    page.wait_for_selector(".ib-run-row")
    rows = page.locator(".ib-run-row")
    assert rows.count() == 7  # tiny, tiny2, big, feat, patching-only, truncated, oversized (not the symlink)
    text = page.inner_text(".ib-table")
    assert "synthetic_5k" in text and "label_features" in text and "logit_diff" in text
    assert "escape" not in text  # a symlink out of the runs dir is not a run
    page.fill("#runs-filter", "synthetic")
    page.wait_for_function("() => document.querySelectorAll('.ib-run-row').length == 1")
    assert "big" in page.inner_text(".ib-table")
    page.screenshot(path=str(ARTIFACTS / "runs_page.png"), full_page=True)
    page.click("text=graph")
    _wait_summary(page, "of 20,000 edges")
    assert "/graph?run=big" in page.url


def test_graph_page_click_hover_slider(page):
    page.goto(page.base + "/graph?run=tiny")
    summary = _wait_summary(page, "showing")
    # slider 40 on 10 edges: round(exp(0.4 * ln 10)) = round(2.51) = 3 strongest edges (1.2, 0.8, -0.6)
    assert summary.startswith("showing 3 of 10 edges")
    assert "ground truth: 2 of 3 known edges in view (1 dashed = pruned away)" in summary
    edges = sorted(_cy_eval(page, "return cy.edges().map(e => e.id())"))
    assert edges == ["a0.h0->a1.h1", "a1.h0->logits", "a1.h1->logits", "m0->a1.h1"]
    assert _cy_eval(page, "return cy.getElementById('m0->a1.h1').hasClass('gt-missing')")
    assert _cy_eval(page, "return cy.getElementById('a1.h0->logits').hasClass('neg')")
    # embeddings at the bottom, logits on top (screen y grows downwards)
    y = {n: _node_xy(page, n)[1] for n in ("a0.h0", "a1.h1", "logits")}
    assert y["logits"] < y["a1.h1"] < y["a0.h0"]
    # hover a node: the info panel shows its layer
    x0, y0 = _node_xy(page, "a1.h1")
    page.mouse.move(x0, y0)
    page.wait_for_function("() => document.getElementById('graph-hover').innerText.includes('node a1.h1')")
    # click a node: neighbours with their scores and the run's patching value of that head
    page.mouse.click(x0, y0)
    page.wait_for_function("() => document.getElementById('graph-node').innerText.includes('incoming')")
    panel = page.inner_text("#graph-node")
    assert "a1.h1 (attention, layer 1)" in panel
    assert "a0.h0" in panel and "+0.8" in panel and "[0.75, 0.85]" in panel
    assert "logits" in panel and "+1.2" in panel
    assert "heads[head=1]" in panel and "1" in panel
    page.screenshot(path=str(ARTIFACTS / "graph_tiny_clicked.png"), full_page=True)
    # move the slider to its right end with the keyboard: every edge is kept
    page.focus("#graph-slider [role=slider]")
    page.keyboard.press("End")
    summary = _wait_summary(page, "showing 10 of 10 edges")
    assert _cy_eval(page, "return cy.edges().length") == 10
    page.keyboard.press("Home")
    summary = _wait_summary(page, "showing 1 of 10 edges")
    assert "|score| ≥ 1.2" in summary
    # hover an edge: score, CI, method and ablation
    mid = _cy_eval(page, "const p = cy.getElementById('a1.h1->logits').renderedMidpoint();"
                         " const r = cy.container().getBoundingClientRect(); return [r.left + p.x, r.top + p.y];")
    page.mouse.move(mid[0], mid[1])
    page.wait_for_function("() => document.getElementById('graph-hover').innerText.includes('edge a1.h1')")
    hover = page.inner_text("#graph-hover")
    assert "score 1.2" in hover and "CI [1.15, 1.25]" in hover and "method eap" in hover and "ablation patch" in hover
    page.screenshot(path=str(ARTIFACTS / "graph_tiny_slider_min.png"), full_page=True)


def test_graph_threshold_pin_and_pinned_subgraph(page):
    page.goto(page.base + "/graph?run=tiny")
    _wait_summary(page, "showing 3 of 10")
    page.click("text=|score| threshold")
    # threshold 40% of max |score| 1.2 = 0.48: 1.2, 0.8, -0.6, 0.5
    _wait_summary(page, "showing 4 of 10 edges")
    x, y = _node_xy(page, "a0.h0")
    page.mouse.click(x, y)
    page.wait_for_function("() => document.getElementById('graph-node').innerText.includes('a0.h0')")
    page.click("#graph-pin")
    _wait_pinned(page, "a0.h0")
    x, y = _node_xy(page, "a1.h1")
    page.mouse.click(x, y)
    page.wait_for_function("() => document.getElementById('graph-node').innerText.includes('a1.h1 (')")
    page.click("#graph-pin")
    _wait_pinned(page, "a1.h1")
    page.click("text=pinned subgraph only")
    summary = _wait_summary(page, "(pinned subgraph)")
    assert summary.startswith("showing 1 of 1 edges")
    assert _cy_eval(page, "return cy.edges().map(e => e.id())") == ["a0.h0->a1.h1"]
    page.click("#graph-clear-pins")
    _wait_summary(page, "showing 4 of 10 edges")


def test_graph_compare_and_exports(page, tmp_path):
    page.goto(page.base + "/graph?run=tiny&compare=tiny2")
    summary = _wait_summary(page, "compare:")
    # A (10 edges) top-3: a1.h1->logits, a0.h0->a1.h1, a1.h0->logits;
    # B (9 edges) top-round(9 ** 0.4) = top-2: a1.h1->logits 1.2, m0->logits 0.9
    assert "compare: 2 only in A, 1 only in B, 1 in both" in summary
    assert _cy_eval(page, "return cy.getElementById('m0->logits').hasClass('only-b')")
    assert _cy_eval(page, "return cy.getElementById('a1.h0->logits').hasClass('only-a')")
    page.screenshot(path=str(ARTIFACTS / "graph_compare.png"), full_page=True)
    with page.expect_download() as dl:
        page.click("#graph-export-json")
    path = tmp_path / "view.json"
    dl.value.save_as(path)
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1 and doc["metadata"]["view"]["compare"] == "tiny2"
    kinds = sorted(e["view"] for e in doc["edges"])
    assert kinds == ["both", "ground_truth_pruned", "only_a", "only_a", "only_b"]
    with page.expect_download() as dl:
        page.click("#graph-export-png")
    png = tmp_path / "view.png"
    dl.value.save_as(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000


def test_big_graph_loads_pruned(page):
    page.goto(page.base + "/graph?run=big")
    summary = _wait_summary(page, "of 20,000 edges")
    n = int(summary.split()[1])
    assert n == round(20000 ** 0.4)  # slider 40 on a log scale
    assert _cy_eval(page, "return cy.edges().length") == n
    page.screenshot(path=str(ARTIFACTS / "graph_big.png"))


def test_patching_page_heatmaps(page):
    page.goto(page.base + "/patching?run=patching-only")
    page.wait_for_selector("#patching-resid_pre .main-svg")
    title = page.locator("#patching-resid_pre .gtitle").text_content()
    assert "resid_pre" in title and "logit_diff (clean=1.0, corrupted=0.0)" in title
    ticks = [t.strip() for t in page.locator("#patching-resid_pre .xtick text").all_text_contents()]
    assert ticks == ["<s>", "When", "Mary", "and", "John", "went"]
    assert page.locator("#patching-heads .main-svg").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "patching_page.png"), full_page=True)


def test_feature_page(page):
    page.goto(page.base + "/features?run=feat&feature=7")
    page.wait_for_selector(".ib-explanation")
    page.wait_for_selector("#feature-histogram .main-svg")
    assert page.locator("#feature-histogram .point path").count() == 4  # one bar per histogram bin
    assert page.inner_text(".ib-explanation") == "the token ' Mary' after 'When'"
    scores = page.inner_text("#feature-scores")
    assert "detection" in scores and "0.810" in scores and "0.500" in scores
    toks = page.locator(".ib-example").first.locator(".ib-tok")
    assert toks.count() == 4 and toks.nth(1).get_attribute("data-act") == "3.5"
    assert "rgb(230, 132, 42)" in toks.nth(1).get_attribute("style")  # the strongest token: full colour
    assert "rgba(230, 132, 42, 0)" in toks.nth(0).get_attribute("style")  # activation 0: transparent
    page.screenshot(path=str(ARTIFACTS / "feature_page.png"), full_page=True)


@pytest.mark.parametrize("query, expect", [
    ("/graph?run=..%2F..%2Fetc", "invalid run id"),
    ("/graph?run=%2Fetc%2Fpasswd", "invalid run id"),
    ("/graph?run=nope", "no run named 'nope'"),
    ("/graph?run=escape", "points outside the runs directory"),
    ("/graph?run=truncated", "not valid JSON (the file looks truncated)"),
    ("/graph?run=oversized", "over the app's limit of 4.0 MiB"),
    ("/patching?run=..", "invalid run id"),
    ("/features?run=tiny", "has no features.jsonl"),
])
def test_bad_input_shows_message(page, server, query, expect):
    page.goto(page.base + query)
    page.wait_for_selector(".ib-error")
    msg = page.inner_text(".ib-error")
    assert expect in msg, msg
    assert "Traceback" not in page.content()
    assert server[1].poll() is None  # the server is still up


def _start_server(runs: Path):
    port = _free_port()
    log = open(runs.parent / f"server-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from apps.server import serve; "
                             "serve(sys.argv[1], port=int(sys.argv[2]))", str(runs), str(port)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            return url, proc, log
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("app server exited")
            time.sleep(0.1)
    raise RuntimeError("app server did not start")


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, tiny_llama, tiny_llama_path):
    """Runs made by interpbench itself on the tiny Llama: the IOI residual-patching recipe
    (through the recipe runner) and an EAP circuit on IOI (interpbench.graphs)."""
    from interpbench.recipes import run_recipe_file
    from interpbench.tasks.ioi import ioi

    from apps.fixtures import write_eap_run

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("INTERPBENCH_CACHE")
    os.environ["INTERPBENCH_CACHE"] = str(cache)
    try:
        recipe_dir = run_recipe_file(ROOT / "recipes" / "ioi_resid_patching.yaml",
                                     overrides={"model": str(tiny_llama_path), "n": 2, "n_boot": 50},
                                     echo=lambda s: None)
    finally:
        if old is None:
            os.environ.pop("INTERPBENCH_CACHE")
        else:
            os.environ["INTERPBENCH_CACHE"] = old
    runs = recipe_dir.parent
    write_eap_run(runs, "ioi-eap-tiny", tiny_llama, ioi(tiny_llama, n=4), n_circuit=40)
    url, proc, log = _start_server(runs)
    yield url, recipe_dir.name
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def test_real_recipe_run_patching_page(browser, real_runs):
    url, recipe_run = real_runs
    pg = browser.new_page(viewport={"width": 1500, "height": 1000})
    pg.goto(url + "/")
    pg.wait_for_selector(".ib-run-row")
    table = pg.inner_text(".ib-table")
    assert recipe_run in table and "ioi-eap-tiny" in table and "ioi_resid_patching" in table
    pg.goto(f"{url}/patching?run={recipe_run}")
    pg.wait_for_selector(".ib-heatmap .main-svg")
    titles = [t.text_content() for t in pg.locator(".ib-heatmap .gtitle").all()]
    assert any("logit_diff (direction=denoise" in t for t in titles), titles
    ticks = [t.strip() for t in pg.locator(".ib-heatmap").first.locator(".xtick text").all_text_contents()]
    assert "When" in ticks and len(ticks) >= 10  # the real prompt's tokens, not positions
    pg.screenshot(path=str(ARTIFACTS / "real_patching_page.png"), full_page=True)
    pg.close()


def test_real_eap_graph_page(browser, real_runs):
    url, _ = real_runs
    pg = browser.new_page(viewport={"width": 1500, "height": 1000})
    pg.goto(f"{url}/graph?run=ioi-eap-tiny")
    summary = _wait_summary(pg, "showing")
    n_edges = int(summary.split(" of ")[1].split()[0])
    assert n_edges > 40 and summary.startswith(f"showing {round(n_edges ** 0.4)} of {n_edges} edges")
    pg.wait_for_selector("#graph-faith .main-svg")
    assert "resample: CPR" in pg.locator("#graph-faith .gtitle").text_content()
    pg.click("text=circuit edges only")
    summary = _wait_summary(pg, "(circuit edges)")
    assert summary.startswith(f"showing {round(40 ** 0.4)} of 40 edges (circuit edges)")
    pg.focus("#graph-slider [role=slider]")
    pg.keyboard.press("End")
    summary = _wait_summary(pg, "showing 40 of 40 edges")
    node = _cy_eval(pg, "return cy.nodes().filter(n => n.data('type') === 'attention' && n.indegree() > 0)[0].id()")
    x, y = _node_xy(pg, node)
    pg.mouse.click(x, y)
    pg.wait_for_function("(id) => document.getElementById('graph-node').innerText.includes(id + ' (attention')",
                         arg=node)
    panel = pg.inner_text("#graph-node")
    assert "incoming" in panel and "(→q)" in panel  # EAP scores each q/k/v port of a head separately
    pg.screenshot(path=str(ARTIFACTS / "graph_real_eap_tiny.png"), full_page=True)
    pg.close()


@pytest.fixture(scope="module")
def label_run(tmp_path_factory, tiny_llama_path):
    """A real ``label`` recipe run (recipes/label_groundtruth.yaml through the recipe runner) on
    synthetic latents over the tiny Llama's tokenizer: baseline explainer, embedding scorer
    with both controls, one dead latent; ``features.jsonl`` = ``feature_records`` of its ledger."""
    from interpbench.recipes import run_recipe_file

    cache = tmp_path_factory.mktemp("labelcache")
    models = ROOT / "cache" / "models"
    if models.is_dir():
        os.symlink(models, cache / "models")
    old = os.environ.get("INTERPBENCH_CACHE")
    os.environ["INTERPBENCH_CACHE"] = str(cache)
    try:
        run_dir = run_recipe_file(ROOT / "recipes" / "label_groundtruth.yaml",
                                  overrides={"source": f"synthetic:{tiny_llama_path}", "n_docs": 24},
                                  echo=lambda s: None)
    finally:
        if old is None:
            os.environ.pop("INTERPBENCH_CACHE")
        else:
            os.environ["INTERPBENCH_CACHE"] = old
    records = [json.loads(line) for line in (run_dir / "features.jsonl").read_text().splitlines()]
    url, proc, log = _start_server(run_dir.parent)
    yield url, run_dir.name, {r["feature"]: r for r in records}
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def test_real_label_run_feature_page(browser, label_run):
    url, run_id, recs = label_run
    done = [f for f, r in recs.items() if r["status"] == "done"]
    dead = [f for f, r in recs.items() if r["status"] == "dead"]
    assert done and dead, {f: r["status"] for f, r in recs.items()}
    pg = browser.new_page(viewport={"width": 1500, "height": 1000})
    pg.goto(url + "/")
    pg.wait_for_selector(".ib-run-row")
    assert run_id in pg.inner_text(".ib-table")
    f = done[0]
    rec = recs[f]
    pg.goto(f"{url}/features?run={run_id}&feature={f}")
    pg.wait_for_selector("#feature-scores")
    assert pg.inner_text(".ib-explanation") == rec["explanation"]
    assert rec["explainer"] in pg.inner_text("#feature-explainer")
    assert pg.inner_text("#feature-explainer-kind") == "baseline explainer (no LLM)"
    assert pg.inner_text("#feature-status").startswith("done")
    sc = rec["scores"]["embedding"]
    row = pg.locator("#feature-scores tr").nth(1).locator("td").all_inner_texts()
    assert row[:4] == ["embedding", f"{sc['score']:.3f}", f"{sc['random_explanation']:.3f}",
                       f"{sc['shuffled_latent']:.3f}"]
    assert row[5] == sc["model"] and row[6] == f"{sc['n_pos']}/{sc['n_neg']}"
    assert row[8] == sc["random_explanation_text"]
    # feature_records exports the top explanation windows and the histogram over the harvest
    assert rec["examples"] and rec["histogram"]["n_active"] > 0
    assert pg.locator("#feature-no-examples").count() == 0
    assert f"top activating examples ({len(rec['examples'])})" in pg.inner_text("#feature-panel")
    assert pg.locator("#feature-panel .ib-example").count() == len(rec["examples"])
    spans = pg.locator("#feature-panel .ib-example").first.locator(".ib-tok")
    assert spans.count() == len(rec["examples"][0]["tokens"])
    peak = max(range(len(rec["examples"][0]["acts"])), key=lambda i: rec["examples"][0]["acts"][i])
    assert float(spans.nth(peak).get_attribute("data-act")) == pytest.approx(rec["examples"][0]["acts"][peak], rel=1e-3)
    assert pg.locator("#feature-histogram").count() == 1
    pg.screenshot(path=str(ARTIFACTS / "feature_real_label_run.png"), full_page=True)
    d = dead[0]
    pg.goto(f"{url}/features?run={run_id}&feature={d}")
    pg.wait_for_selector("#feature-status")
    status = pg.inner_text("#feature-status")
    assert status.startswith("dead") and recs[d]["dead"] in status
    assert pg.inner_text(".ib-explanation") == "(no explanation)"
    assert "no scores recorded" in pg.inner_text("#feature-scores")
    pg.screenshot(path=str(ARTIFACTS / "feature_real_label_run_dead.png"), full_page=True)
    pg.close()
