"""Read a job's ledger back as one record per feature (JSONL export, status, the app).

Each record: ``feature``, ``status``, ``explanation``, ``explainer``, ``explainer_kind``
(``llm`` or ``baseline``), ``dead``/``error`` reasons, and ``scores``: per scorer its
``score``, ``random_explanation`` (the control's score), ``shuffled_latent`` (the control's
score), ``model``, example counts and parse failures; flat keys ``<scorer>`` and
``<scorer>_random_explanation`` repeat the two headline numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..paths import atomic_write_text
from .ledger import Ledger

EXPORT_SCHEMA_VERSION = 1


def feature_records(ledger: Ledger) -> list[dict]:
    stages = ledger.all_stages()
    out = []
    for feature, status, attempts, error in ledger.rows():
        st = stages.get(feature, {})
        e = st.get("explanation") or {}
        rec = {"feature": feature, "status": status, "explanation": e.get("text"), "explainer": e.get("explainer"),
               "explainer_kind": e.get("kind"), "dead": error if status in ("dead", "skipped") else None,
               "error": error if status == "failed" else None, "attempts": attempts, "scores": {},
               "schema_version": EXPORT_SCHEMA_VERSION}
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
