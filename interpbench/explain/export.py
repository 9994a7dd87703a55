"""Read a job's ledger back as one record per feature (JSONL export, status, the app).

Each record: ``feature``, ``status``, ``explanation``, ``explainer``, ``explainer_kind``
(``llm`` or ``baseline``), ``dead``/``error`` reasons, and ``scores``: per scorer its
``score``, ``random_explanation`` (the control's score), ``shuffled_latent`` (the control's
score), ``model``, example counts and parse failures; flat keys ``<scorer>`` and
``<scorer>_random_explanation`` repeat the two headline numbers.

Where the ledger has the feature's examples: ``max_act`` and ``examples``, the top
``n_examples`` explanation windows (``tokens``, ``acts``, ``doc``, ``window``; top first).
Where the job's ``harvest.pt`` sits beside the ledger: ``histogram``, the feature's
activations over every harvested token, ``{edges: [k+1], counts: [k], n_tokens, n_active,
range}`` over the active (> 0) tokens — what the app's feature page draws.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch

from ..paths import atomic_write_text
from .ledger import Ledger

EXPORT_SCHEMA_VERSION = 1


def _histograms(harvest_path: Path, bins: int) -> dict:
    """Feature -> histogram of its active (> 0) activations over all harvested tokens."""
    from .harvest import Harvest

    h = Harvest.load(harvest_path)
    acts = h.acts.flatten(0, 1).float()  # [tokens feature]
    out = {}
    for j, f in enumerate(h.features):
        a = acts[:, j]
        act = a[a > 0]
        if act.numel() == 0:
            out[f] = {"edges": [0.0, 1.0], "counts": [0], "n_tokens": int(a.numel()), "n_active": 0, "range": "active"}
            continue
        hi = float(act.max())
        counts = torch.histc(act, bins=bins, min=0.0, max=hi)
        edges = torch.linspace(0.0, hi, bins + 1)
        out[f] = {"edges": [round(float(x), 6) for x in edges], "counts": [int(c) for c in counts],
                  "n_tokens": int(a.numel()), "n_active": int(act.numel()), "range": "active"}
    return out


def feature_records(ledger: Ledger, n_examples: int = 8, harvest_path: Optional[Path] = None,
                    bins: int = 30) -> list[dict]:
    """One record per feature (see the module docstring); ``harvest_path`` defaults to the
    ``harvest.pt`` beside the ledger (no histograms when it is absent)."""
    stages = ledger.all_stages()
    hp = Path(harvest_path) if harvest_path is not None else ledger.path.parent / "harvest.pt"
    hists = _histograms(hp, bins) if hp.exists() else {}
    out = []
    for feature, status, attempts, error in ledger.rows():
        st = stages.get(feature, {})
        e = st.get("explanation") or {}
        rec = {"feature": feature, "status": status, "explanation": e.get("text"), "explainer": e.get("explainer"),
               "explainer_kind": e.get("kind"), "dead": error if status in ("dead", "skipped") else None,
               "error": error if status == "failed" else None, "attempts": attempts, "scores": {},
               "schema_version": EXPORT_SCHEMA_VERSION}
        ex = st.get("examples")
        if ex:
            rec["max_act"] = ex.get("max_act")
            rec["examples"] = [{"tokens": r["tokens"], "acts": r["acts"], "doc": r["doc"], "window": r["window"]}
                               for r in ex.get("explain", [])[:n_examples]]
        if feature in hists:
            rec["histogram"] = hists[feature]
        for name, r in sorted(st.items()):
            if not name.startswith("score:"):
                continue
            s = name.split(":", 1)[1]
            rec["scores"][s] = {"score": r["score"], "random_explanation": r["random_explanation"].get("score"),
                                "random_explanation_text": r["random_explanation_text"],
                                "shuffled_latent": r["shuffled_latent"].get("score"), "metrics": r["metrics"],
                                "model": r["model"], "n_pos": r["n_pos"], "n_neg": r["n_neg"],
                                "n_items": r["n_items"], "parse_failures": r["parse_failures"],
                                "prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"]}
            rec[s] = r["score"]
            rec[f"{s}_random_explanation"] = r["random_explanation"].get("score")
        out.append(rec)
    return out


def export_jsonl(ledger: Ledger, out: Path) -> int:
    recs = feature_records(ledger)
    atomic_write_text(Path(out), "".join(json.dumps(r, sort_keys=True) + "\n" for r in recs))
    return len(recs)


def summarize(records: list[dict]) -> dict:
    """Per scorer: mean score, mean random-explanation control, share beating the control."""
    by: dict = {}
    for r in records:
        for s, v in r["scores"].items():
            by.setdefault(s, []).append((v["score"], v["random_explanation"], v["shuffled_latent"], v["parse_failures"]))
    out = {}
    for s, rows in by.items():
        pairs = [(a, b) for a, b, _, _ in rows if a is not None and b is not None]
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        out[s] = {"n": len(rows), "mean": mean([a for a, _, _, _ in rows if a is not None]),
                  "mean_random_explanation": mean([b for _, b, _, _ in rows if b is not None]),
                  "mean_shuffled_latent": mean([c for _, _, c, _ in rows if c is not None]),
                  "beats_random_explanation": (sum(a > b for a, b in pairs) / len(pairs)) if pairs else None,
                  "parse_failures": sum(p for *_, p in rows)}
    return out
