"""Prompt-injection heuristics in English and Chinese (scanner ``injection``).

Cues live in ``guard/data/injection.yaml``: overriding earlier instructions, forged role
markers, persona and "developer mode" switches, requests for the system prompt. Each
cue has a weight; the text's score is ``1 - prod(1 - w)`` over the distinct cues found,
so one strong cue fires on its own and weak ones only together. Base64 blobs are
decoded and scored the same way (an encoded injection is a cue of its own, ``encoded``).
Hidden characters (zero-width, tags) are looked through, so "ig\u200bnore" still counts.

Options: ``threshold`` (0.7) and ``classifier``, a model-based check the operator adds;
the text's score is the higher of the heuristics' and the classifier's, and a classifier
hit is ``injection.classifier`` over the whole text. ``classifier`` is one of:

- null (the default): heuristics only; they work offline on their own.
- ``{onnx: DIR, label: NAME, max_length: 512}``: a local ONNX text classifier (a
  Hugging Face prompt-injection model exported with ``optimum``: ``model.onnx``,
  ``tokenizer.json``, ``config.json`` in ``DIR``), read from disk only, never downloaded;
  needs the extra (``pip install 'airlock[classifier]'``). ``label`` names the injection
  label when its name lacks INJECTION or JAILBREAK; long texts are scored on their first
  and last ``max_length`` tokens. See :mod:`airlock.guard.onnx_classifier`.
- ``"package.module:function"``: any callable ``(text) -> float`` in 0..1 the operator
  installs.

A missing directory, file or extra is a configuration error at start. A classifier that
raises while scanning scores 0 (the heuristics still decide) and is counted in
``classifier_errors``. A model adds its inference time to every input message.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airlock.guard import onnx_classifier
from airlock.guard._options import Hints, Options, load_data, lower
from airlock.guard.base import GuardConfigError, GuardContext, Hit
from airlock.guard.registry import register
from airlock.guard.unicode import strip_hidden

_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{20,4096}={0,2}")
_MIN_B64_LETTERS = 0.6  # share of decoded characters that are letters or spaces
_MAX_BLOBS = 20  # decoded per text: a hostile prompt of many blobs stays cheap


@dataclass(frozen=True)
class _Rule:
    id: str
    weight: float
    hints: tuple[str, ...]
    regex: re.Pattern[str]
    case: bool


def _rules() -> tuple[_Rule, ...]:
    data = load_data("injection.yaml")
    return tuple(
        _Rule(
            r["id"],
            float(r["weight"]),
            tuple(h.lower() for h in r["hints"]),
            re.compile(r["regex"]),
            bool(r.get("case", False)),
        )
        for r in data["rules"]
    )


def combine(weights: Iterable[float]) -> float:
    """``1 - prod(1 - w)``: independent cues make a likelier injection."""
    rest = 1.0
    for w in weights:
        rest *= 1.0 - w
    return 1.0 - rest


class _Matcher:
    """Finds the cues of one text: ``{cue id: (weight, start, end)}`` (best match per id)."""

    def __init__(self, rules: tuple[_Rule, ...]) -> None:
        self.rules = rules
        self.hints = Hints(h for r in rules for h in r.hints)

    def cues(self, text: str) -> dict[str, tuple[float, int, int]]:
        low = lower(text)
        present = self.hints.present(low)
        found: dict[str, tuple[float, int, int]] = {}
        for rule in self.rules:
            if rule.weight <= found.get(rule.id, (0.0, 0, 0))[0]:
                continue
            if present.isdisjoint(rule.hints):
                continue
            m = rule.regex.search(text if rule.case else low)
            if m is not None:
                found[rule.id] = (rule.weight, m.start(), m.end())
        return found


def _decoded_blobs(text: str) -> Iterable[tuple[int, int, str]]:
    """(start, end, decoded text) for base64 runs that decode to readable text."""
    count = 0
    for m in _B64.finditer(text):
        raw = m.group().rstrip("=").replace("-", "+").replace("_", "/")
        raw = raw[: len(raw) - len(raw) % 4 if len(raw) % 4 == 1 else len(raw)]
        try:
            data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
            decoded = data.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        readable = sum(1 for c in decoded if c.isalpha() or c == " ")
        if decoded and readable >= _MIN_B64_LETTERS * len(decoded):
            yield m.start(), m.end(), decoded
            count += 1
            if count >= _MAX_BLOBS:
                return


@register("injection")
class InjectionScanner:
    """Weighted English and Chinese injection cues (plus base64-encoded ones)."""

    name: str = "injection"
    stages: tuple[str, ...] = ("input",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        opts = Options(self.name, options)
        self.threshold = opts.number("threshold", 0.7, 0.0, 1.0)
        spec = opts.value("classifier")
        self.classifier = _load_classifier(spec, opts) if spec is not None else None
        self.classifier_errors = 0
        opts.done()
        self.matcher = _Matcher(_RULES)

    def score(self, text: str) -> float:
        """The injection score of ``text`` alone (0..1), whatever the threshold."""
        return combine(w for w, _, _ in self._cues(text).values())

    def _cues(self, text: str) -> dict[str, tuple[float, int, int]]:
        plain, index = strip_hidden(text)
        found = self.matcher.cues(plain)
        encoded = 0.0, 0, 0
        for start, end, decoded in _decoded_blobs(plain):
            inner = combine(w for w, _, _ in self.matcher.cues(decoded).values())
            if inner > encoded[0]:
                encoded = min(inner, 0.95), start, end
        if encoded[0] > 0:
            found["encoded"] = encoded
        if index is not None:
            found = {k: (w, index[s], index[e - 1] + 1) for k, (w, s, e) in found.items()}
        return found

    def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
        """One hit per cue when the combined score reaches the threshold, else none."""
        if not text:
            return []
        cues = self._cues(text)
        score = combine(w for w, _, _ in cues.values())
        model = self._classify(text) if self.classifier is not None else 0.0
        if model >= self.threshold and model > score:
            return [Hit("injection.classifier", 0, len(text), round(model, 3))]
        if not cues or score < self.threshold:
            return []
        hits = [Hit(f"injection.{cid}", s, e, round(score, 3)) for cid, (_, s, e) in cues.items()]
        return sorted(hits, key=lambda h: h.start)

    def _classify(self, text: str) -> float:
        assert self.classifier is not None
        try:
            value = float(self.classifier(text))
        except Exception:  # an operator's model must not take the gateway down
            self.classifier_errors += 1
            return 0.0
        return min(1.0, max(0.0, value)) if value == value else 0.0  # NaN scores 0


_CLASSIFIER_FORMS = "null, {onnx: DIR, label: ..., max_length: ...} or 'package.module:function'"
_ONNX_KEYS = frozenset({"onnx", "label", "max_length"})


def _load_classifier(spec: Any, opts: Options) -> Any:
    """The operator's classifier: a local ONNX model or ``package.module:function``."""
    import importlib

    if isinstance(spec, Mapping):
        return _load_onnx(spec, opts)
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise opts.error("classifier", _CLASSIFIER_FORMS, spec)
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise opts.error("classifier", f"an importable callable ({e})", spec) from None
    if not callable(fn):
        raise opts.error("classifier", "a callable", spec)
    return fn


def _load_onnx(spec: Mapping[str, Any], opts: Options) -> Any:
    """``{onnx: DIR, label: ..., max_length: ...}``: load the model now, so a bad directory
    or a missing extra stops the gateway at start with a clear message."""
    sub = Options(f"{opts.scanner}.classifier", spec)
    unknown = sorted(str(k) for k in set(spec) - _ONNX_KEYS)
    if unknown:  # checked here: Options.done() lets the pipeline's own keys through
        raise GuardConfigError(f"{sub.scanner}: unknown option(s) {', '.join(unknown)}")
    path = sub.value("onnx")
    if not isinstance(path, str) or not path.strip():
        raise sub.error("onnx", "the path of a model directory", path)
    label = sub.value("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise sub.error("label", "a label name of the model", label)
    max_length = sub.integer("max_length", 512, 16, 8192)
    try:
        return onnx_classifier.load(path, label=label, max_length=max_length)
    except GuardConfigError as e:
        raise GuardConfigError(f"{opts.scanner}: option 'classifier': {e}") from None


_RULES = _rules()
