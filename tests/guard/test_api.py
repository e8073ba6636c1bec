"""The public surface: what ``airlock.guard`` exports, and the scanner registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import airlock.guard as guard
from airlock.guard import GuardConfigError, GuardContext, Hit, Pipeline, create, names, register


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in vars(guard) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(guard, n)).__name__ == "module"}
    assert set(guard.__all__) == public - modules
    assert {"Pipeline", "Vault", "StreamGuard", "Verdict", "Hit"} <= set(guard.__all__)


def test_builtins_are_registered() -> None:
    assert set(names()) >= {
        "injection", "secrets", "pii", "unicode", "terms", "leaks", "exfil", "code", "think",
    }  # fmt: skip
    with pytest.raises(GuardConfigError, match="unknown guard scanner 'nope' \\(known: "):
        create("nope")


def test_a_plugin_registers_the_way_builtins_do() -> None:
    @register("test-shouting")
    class Shouting:
        name: str = "test-shouting"
        stages: tuple[str, ...] = ("input", "output")

        def __init__(self, options: Mapping[str, Any]) -> None:
            self.min = int(options.get("min", 5))

        def scan(self, text: str, ctx: GuardContext | None = None) -> list[Hit]:
            run = "".join(c if c.isupper() else " " for c in text).split()
            at, hits = 0, []
            for word in run:
                at = text.index(word, at)
                if len(word) >= self.min:
                    hits.append(Hit("shouting", at, at + len(word)))
                at += len(word)
            return hits

    with pytest.raises(ValueError, match="already registered"):
        register("test-shouting")(Shouting)
    pipe = Pipeline.from_config(
        {"input": {"test-shouting": {"action": "redact", "min": 4, "restore": True}}}
    )
    res = pipe.check_input([{"role": "user", "content": "please STOP NOW"}])
    assert res.messages[0]["content"] == "please [TEST_SHOUTING_1] NOW"
    assert pipe.check_output("ok [TEST_SHOUTING_1]", res.vault).text == "ok STOP"
