"""Detection and fuzzing scorers (Paulo et al. 2024, "Automatically interpreting millions of
features in large language models").

Detection:
1. Items: the activating scoring windows (label 1) and the non-activating ones (label 0).
2. The judge sees the explanation and one window's plain text and answers Yes/No to "does
   the text contain what the description describes?"; ``p_i = P(Yes)`` from the judge
   (local model: next-token logits of the Yes/No spellings, renormalised).
3. ``score = AUROC(labels, p)``; also balanced accuracy ``(TPR+TNR)/2`` and F1 at ``p > 0.5``.

Fuzzing:
1. Items: each activating window with its truly activating tokens (``a > 0.3·max``)
   marked ``<<tok>>`` (label 1), and each non-activating window with as many tokens marked
   at random (label 0).
2. The judge answers Yes/No to "are the marked tokens instances of the description?".
3. Same metrics as detection.
"""

from __future__ import annotations

import numpy as np

from ..llm_base import thread_tokens
from ..metrics import classification_metrics
from .base import Judged, Scorer

YES_NO = {"yes": ["Yes", " Yes", "yes", "YES"], "no": ["No", " No", "no", "NO"]}
JUDGE_SYSTEM = "You check whether a text matches a short description. Answer Yes or No."


def plain(r) -> str:
    return "".join(r.tokens).replace("\n", " ").strip()


def marked(r, idx: set) -> str:
    return "".join(f"<<{t}>>" if i in idx else t for i, t in enumerate(r.tokens)).replace("\n", " ").strip()


class _YesNoScorer(Scorer):
    def __init__(self, client, seed: int = 0):
        self.client, self.seed = client, seed

    @property
    def model_name(self) -> str:
        return self.client.name

    def items(self, ex) -> list[tuple[str, int]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def question(self, text: str, shown: str) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def judge(self, text: str, ex) -> Judged:
        items = self.items(ex)
        prompts = [self.question(text, shown) for shown, _ in items]
        p0, c0 = thread_tokens()
        probs = self.client.choice_probs(prompts, YES_NO)
        p1, c1 = thread_tokens()
        preds = [None if p is None else p["yes"] for p in probs]
        return Judged([lab for _, lab in items], preds, p1 - p0, c1 - c0)

    def metrics(self, targets, preds) -> dict:
        m = classification_metrics(targets, preds)
        return {"score": m["auroc"], **m}


class DetectionScorer(_YesNoScorer):
    name = "detection"

    def items(self, ex):
        return [(plain(r), 1) for r in ex.score_pos] + [(plain(r), 0) for r in ex.score_neg]

    def question(self, text, shown):
        return [{"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": f"Description: {text}\nText: {shown}\n"
                                            f"Does the text contain {text}? Answer Yes or No."}]


class FuzzingScorer(_YesNoScorer):
    name = "fuzzing"

    def items(self, ex):
        out = []
        rng = np.random.default_rng([self.seed, ex.feature, 3])
        counts = []
        for r in ex.score_pos:
            idx = {i for i, a in enumerate(r.acts) if a > 0.3 * ex.max_act} or {int(np.argmax(r.acts))}
            counts.append(len(idx))
            out.append((marked(r, idx), 1))
        for j, r in enumerate(ex.score_neg):
            k = min(counts[j % len(counts)], len(r.tokens))
            out.append((marked(r, set(rng.choice(len(r.tokens), size=k, replace=False).tolist())), 0))
        return out

    def question(self, text, shown):
        return [{"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": f"Description: {text}\nText: {shown}\n"
                                            f"Are the tokens marked <<like this>> examples of {text}? "
                                            f"Answer Yes or No."}]
