"""Judge one answer with a probe's detectors: scores per detector, and whether it is a hit."""

from __future__ import annotations

from airlock.probes import detectors
from airlock.probes.model import Probe


class JudgeError(Exception):
    """A detector failed on an answer (a bug in the detector, not in the target)."""


def judge(probe: Probe, answer: str, reasoning: str, prompt: str) -> tuple[dict[str, float], bool]:
    """Score ``answer``/``reasoning`` with every detector of ``probe``.

    Returns the score per detector (named ``name`` or ``name#2`` when a probe uses one
    twice) and the verdict: ``combine == "any"`` hits when one detector reaches its
    threshold, ``"all"`` when every one does.

    Raises:
        JudgeError: a detector raised or returned something that is not a score.
    """
    scores: dict[str, float] = {}
    verdicts: list[bool] = []
    for spec in probe.detectors:
        det = detectors.get(spec.name)
        scope = spec.scope or det.scope
        # An empty answer is still judged (it holds no facts, no compliance); an empty
        # reasoning adds nothing to an answer.
        both = (answer, reasoning) if reasoning else (answer,)
        texts = {"answer": (answer,), "reasoning": (reasoning,), "both": both}[scope]
        params = {**probe.params, **spec.params}
        best = 0.0
        for text in texts:
            ev = detectors.Evidence(text=text, lang=probe.lang, params=params, prompt=prompt)
            try:
                score = float(det.fn(ev))
            except Exception as e:
                raise JudgeError(f"detector {spec.name!r} failed: {type(e).__name__}: {e}") from e
            if not 0.0 <= score <= 1.0:
                raise JudgeError(f"detector {spec.name!r} returned {score!r}, not a score in 0..1")
            best = max(best, score)
        label = spec.name if spec.name not in scores else f"{spec.name}#{len(scores) + 1}"
        scores[label] = round(best, 4)
        verdicts.append(best >= spec.threshold)
    hit = all(verdicts) if probe.combine == "all" else any(verdicts)
    return scores, bool(verdicts) and hit
