"""A local ONNX text classifier as the ``injection`` scanner's model (extra ``classifier``).

:func:`load` reads a directory the operator prepared on a connected machine, for
instance a Hugging Face prompt-injection classifier exported with ``optimum``::

    model.onnx        the graph (inputs input_ids, attention_mask[, token_type_ids])
    tokenizer.json    a ``tokenizers`` file (the "fast" tokenizer)
    config.json       with ``id2label``, e.g. {"0": "SAFE", "1": "INJECTION"}

and returns a callable ``text -> probability of injection``. Everything comes from disk:
nothing is downloaded, and an ONNX graph runs no Python. ``onnxruntime`` (CPU) and
``tokenizers`` are imported here, lazily, so the rest of airlock works without them.

Which label means injection: ``label=`` if given, else every label whose name contains
INJECTION or JAILBREAK (their probabilities add up: both are attacks), else index 1 of a
two-class model. Long texts are scored on two windows, the first and the last
``max_length`` tokens, and the higher score counts: a cost bounded whatever the length
(an injection only in the middle of a very long text is left to the heuristics).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from airlock.guard.base import GuardConfigError

INSTALL = "pip install 'airlock[classifier]'"
FILES = ("model.onnx", "tokenizer.json", "config.json")
_MARKERS = ("INJECTION", "JAILBREAK")
_NEGATED = re.compile(r"^(?:no|not|non)(?:[\s_-]|(?=injection|jailbreak))", re.IGNORECASE)
_CHARS_PER_TOKEN = 16  # a window tokenizes at most this many characters per token
_MAX_CONFIG_BYTES = 1 << 20
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_INT_TYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32"}


def load(
    model_dir: str | os.PathLike[str], *, label: str | None = None, max_length: int = 512
) -> Callable[[str], float]:
    """Load the classifier in ``model_dir`` and return ``score(text) -> float`` in 0..1.

    Args:
        model_dir: a directory with ``model.onnx``, ``tokenizer.json`` and ``config.json``.
        label: the name of the injection label in ``id2label`` (case-insensitive); by
            default the labels containing INJECTION or JAILBREAK, or index 1 of two.
        max_length: tokens per window, special tokens included.

    Returns:
        A thread-safe callable giving the softmax probability of the injection label(s),
        the higher of the text's first and last window.

    Raises:
        GuardConfigError: the extra is not installed, a file is missing or unreadable,
            the label cannot be found, or the model fails on a test input.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 8:
        raise GuardConfigError(f"max_length must be a whole number of at least 8: {max_length!r}")
    ort, tokenizers = _modules()
    root = _directory(model_dir)
    labels = _labels(root / "config.json")
    session = _session(ort, root / "model.onnx")
    size = _output_size(session, labels)
    classifier = _Classifier(
        session, _tokenizer(tokenizers, root / "tokenizer.json"), _pick(labels, label, size)
    )
    classifier.set_window(max_length)
    _warm_up(classifier, root)
    return classifier


def _modules() -> tuple[ModuleType, ModuleType]:
    try:
        return importlib.import_module("onnxruntime"), importlib.import_module("tokenizers")
    except ImportError as e:
        raise GuardConfigError(
            f"the ONNX classifier needs onnxruntime and tokenizers ({e}); {INSTALL}"
        ) from None


def _directory(model_dir: str | os.PathLike[str]) -> Path:
    root = Path(model_dir).expanduser()
    if not root.is_dir():
        raise GuardConfigError(f"no model directory at {str(root)!r}")
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise GuardConfigError(
            f"{str(root)!r} lacks {', '.join(missing)} (export the model with optimum)"
        )
    return root


def _labels(path: Path) -> dict[int, str]:
    """``id2label`` of ``config.json`` as {index: name} ({} when the config has none)."""
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_CONFIG_BYTES + 1)
        if len(raw) > _MAX_CONFIG_BYTES:
            raise ValueError("larger than 1 MiB")
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
        found = config.get("id2label") or {}
        if not isinstance(found, dict):
            raise ValueError("id2label is not a mapping")
        return {int(k): str(v) for k, v in found.items()}
    except (OSError, ValueError) as e:  # json.JSONDecodeError and int('x') are ValueErrors
        raise GuardConfigError(f"cannot read {str(path)!r}: {e}") from None


def _tokenizer(tokenizers: ModuleType, path: Path) -> Any:
    try:
        tok = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception on a bad file
        raise GuardConfigError(f"cannot read {str(path)!r}: {e}") from None
    # Windows are cut here, not by the file's own settings; set before any thread uses it.
    tok.no_truncation()
    tok.no_padding()
    return tok


def _session(ort: ModuleType, path: Path) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings on the gateway's stderr
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # onnxruntime raises its own exception types
        raise GuardConfigError(f"cannot load {str(path)!r}: {e}") from None
    unknown = [i.name for i in session.get_inputs() if i.name not in _INPUTS]
    if unknown:
        raise GuardConfigError(
            f"{str(path)!r} wants inputs {', '.join(unknown)}; supported: {', '.join(_INPUTS)}"
        )
    if "input_ids" not in [i.name for i in session.get_inputs()]:
        raise GuardConfigError(f"{str(path)!r} has no input_ids input")
    return session


def _output_size(session: Any, labels: dict[int, str]) -> int:
    """The number of classes: the first output's last dimension, checked against labels."""
    shape = session.get_outputs()[0].shape
    size = shape[-1] if shape and isinstance(shape[-1], int) else len(labels)
    if labels and (size != len(labels) or set(labels) != set(range(size))):
        raise GuardConfigError(f"the model has {size} outputs but id2label is {labels}")
    if size < 2:
        raise GuardConfigError("the model's output size is unknown; add id2label to config")
    return size


def _pick(labels: dict[int, str], label: str | None, size: int) -> tuple[int, ...]:
    """The indices whose probabilities make the injection score."""
    names = ", ".join(labels[i] for i in sorted(labels)) or "none"
    if label is not None:
        found = tuple(i for i in sorted(labels) if labels[i].casefold() == label.casefold())
        if not found:
            raise GuardConfigError(f"label {label!r} is not one of the model's ({names})")
        return found
    found = tuple(
        i
        for i in sorted(labels)
        if any(m in labels[i].upper() for m in _MARKERS) and not _NEGATED.match(labels[i])
    )
    if found and len(found) < size:
        return found
    if size == 2 and not found:
        return (1,)
    raise GuardConfigError(f"cannot tell which label means injection ({names}); set 'label'")


def _warm_up(classifier: _Classifier, root: Path) -> None:
    """Score a text of two full windows now, so a bad model fails at start, not per request."""
    try:
        classifier("a " * classifier.budget * 2)
    except Exception as e:  # whatever the model does wrong, say so at configuration time
        raise GuardConfigError(
            f"the model in {str(root)!r} fails on a test input "
            f"(max_length {classifier.budget + classifier.specials}?): {e}"
        ) from None


class _Classifier:
    """``score(text)``: tokenizer and session are shared; each call has its own arrays."""

    def __init__(self, session: Any, tokenizer: Any, indices: tuple[int, ...]) -> None:
        import numpy  # an onnxruntime dependency, present whenever the session is

        self.np = numpy
        self.session = session
        self.tokenizer = tokenizer
        self.indices = list(indices)
        self.inputs = [(i.name, _INT_TYPES.get(i.type, "int64")) for i in session.get_inputs()]
        self.output = session.get_outputs()[0].name
        self.specials = int(tokenizer.num_special_tokens_to_add(False))
        self.budget = 0

    def set_window(self, max_length: int) -> None:
        """Use windows of ``max_length`` tokens, special tokens included."""
        if max_length <= self.specials:
            raise GuardConfigError(
                f"max_length {max_length} leaves no room beside {self.specials} special tokens"
            )
        self.budget = max_length - self.specials

    def __call__(self, text: str) -> float:
        return max(self._score(enc) for enc in self._windows(text))

    def _windows(self, text: str) -> Iterable[Any]:
        """The first window and, for a text longer than one, the last (encodings with their
        special tokens). Each end is tokenized from a bounded slice of characters."""
        span = self.budget * _CHARS_PER_TOKEN
        head = self.tokenizer.encode(text[:span], add_special_tokens=False)
        if len(head.ids) <= self.budget and len(text) <= span:
            return [self._finish(head)]
        tail = self.tokenizer.encode(text[-span:], add_special_tokens=False)
        head.truncate(self.budget, direction="right")
        tail.truncate(self.budget, direction="left")
        return [self._finish(head), self._finish(tail)]

    def _finish(self, encoding: Any) -> Any:
        return self.tokenizer.post_process(encoding, None, True)

    def _score(self, encoding: Any) -> float:
        np = self.np
        columns = {
            "input_ids": encoding.ids,
            "attention_mask": encoding.attention_mask,
            "token_type_ids": encoding.type_ids,
        }
        feed = {name: np.asarray([columns[name]], dtype=dtype) for name, dtype in self.inputs}
        (logits,) = self.session.run([self.output], feed)
        row = np.asarray(logits, dtype=np.float64).reshape(-1)
        exp = np.exp(row - row.max())
        return float(exp[self.indices].sum() / exp.sum())
