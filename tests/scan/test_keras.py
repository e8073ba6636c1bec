"""Keras config analysis (.keras config.json and .h5 model_config)."""

from __future__ import annotations

import base64
import json
import marshal
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock.findings import Finding
from airlock.scan.base import FileInput, ScanContext
from airlock.scan.engine import choose_format
from airlock.scan.keras import H5_MAGIC, analyze_keras_config, scan_keras_h5


def k3(
    cls: str, module: str | None = "keras.layers", registered: str | None = None, **cfg: Any
) -> dict[str, Any]:
    return {"module": module, "class_name": cls, "config": cfg, "registered_name": registered}


def dense(name: str) -> dict[str, Any]:
    init = k3("GlorotUniform", "keras.initializers", seed=None)
    act = {
        "module": "keras.activations",
        "class_name": "function",
        "config": "relu",
        "registered_name": "relu",
    }
    return k3("Dense", name=name, units=4, kernel_initializer=init, activation=act)


def functional(layers: list[dict[str, Any]]) -> dict[str, Any]:
    opt = k3("Adam", "keras.optimizers", learning_rate=0.001)
    model = k3("Functional", "keras.src.models.functional", name="m", layers=layers)
    model["compile_config"] = {"optimizer": opt, "loss": "mse"}
    return model


def keras2(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "class_name": "Sequential",
        "config": {"name": "seq", "layers": layers},
        "keras_version": "2.13.1",
    }


def analyze(obj: Any, ctx: ScanContext | None = None) -> list[Finding]:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return list(analyze_keras_config(raw, "m.keras!config.json", ctx or ScanContext()))


def ids(fs: list[Finding]) -> set[str]:
    return {f.rule_id for f in fs}


def test_clean_keras3_functional() -> None:
    inp = k3("InputLayer", batch_shape=[None, 4], name="input_layer")
    assert analyze(functional([inp, dense("d1"), dense("d2")])) == []


def test_clean_keras2_sequential() -> None:
    layers = [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "in"}},
        {
            "class_name": "Dense",
            "config": {
                "name": "d",
                "kernel_initializer": {"class_name": "GlorotUniform", "config": {}},
            },
        },
        {
            "class_name": "Bidirectional",
            "config": {"layer": {"class_name": "LSTM", "config": {"name": "l"}}},
        },
    ]
    assert analyze(keras2(layers)) == []


def lambda_payload(sentinel: Path) -> str:
    """Marshalled bytecode of a lambda that would create ``sentinel`` if it ever ran."""
    module = compile(f"lambda x: open({str(sentinel)!r}, 'w')", "<payload>", "eval")
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return base64.b64encode(marshal.dumps(code)).decode()


def test_keras2_lambda_is_flagged_and_never_executed(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "evil",
            "function": [lambda_payload(sentinel), None, None],
            "function_type": "lambda",
            "module": "__main__",
        },
    }
    found = analyze(keras2([layer]))
    assert ids(found) == {"keras.lambda-layer"}
    ev = found[0].evidence or ""
    assert "Lambda:evil" in ev and "marshalled bytecode" in ev and "open" in ev
    assert not sentinel.exists()


def test_keras3_lambda_nested_in_submodel(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned3"
    fn = {
        "class_name": "__lambda__",
        "config": {"code": lambda_payload(sentinel), "defaults": None, "closure": None},
    }
    inner = functional([k3("Lambda", name="hidden", function=fn)])
    found = analyze(functional([dense("a"), inner]))
    assert [f.rule_id for f in found] == ["keras.lambda-layer"]  # reported once, not twice
    assert not sentinel.exists()


def test_lambda_with_function_reference() -> None:
    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": "helper",
            "function_type": "function",
            "module": "mypkg.fns",
        },
    }
    [f] = analyze(keras2([layer]))
    assert f.rule_id == "keras.lambda-layer" and "mypkg.fns.helper" in (f.evidence or "")


def test_custom_objects() -> None:
    keras3_custom = k3("MyLayer", "my_pkg.layers", "MyPkg>MyLayer", name="x")
    registered_only = k3("Block", "keras.src.layers", "Custom>Block", name="y")
    keras2_custom = {"class_name": "AttentionWithContext", "config": {"name": "att"}}
    for obj in (keras3_custom, registered_only):
        found = analyze(functional([obj]))
        assert ids(found) == {"keras.custom-object"} and str(found[0].severity) == "medium"
    assert ids(analyze(keras2([keras2_custom]))) == {"keras.custom-object"}


def test_known_ecosystem_package_is_low() -> None:
    obj = k3(
        "GemmaBackbone", "keras_hub.src.models.gemma.gemma_backbone", "keras_hub>GemmaBackbone"
    )
    [f] = analyze(obj)
    assert f.rule_id == "keras.custom-object" and str(f.severity) == "low"


def test_dangerous_references() -> None:
    cases = [
        {"module": "os", "class_name": "function", "config": "system", "registered_name": None},
        {"module": "builtins", "class_name": "function", "config": "exec", "registered_name": None},
        {
            "module": "keras.utils",
            "class_name": "function",
            "config": "get_file",
            "registered_name": None,
        },
        {
            "module": "keras.config",
            "class_name": "function",
            "config": "enable_unsafe_deserialization",
            "registered_name": None,
        },
        {"class_name": "TFOpLambda", "config": {"name": "w", "function": "io.write_file"}},
    ]
    for c in cases:
        found = analyze(functional([k3("Dense", name="d", activation=c)]))
        assert ids(found) == {"keras.dangerous-reference"}, c


def test_harmless_tfoplambda_not_flagged() -> None:
    assert (
        analyze(
            keras2([{"class_name": "TFOpLambda", "config": {"name": "a", "function": "math.add"}}])
        )
        == []
    )


def test_malformed() -> None:
    assert ids(analyze(b"{not json")) == {"keras.malformed"}
    assert ids(analyze(b"[" * 100_000)) == {"keras.malformed"}
    assert ids(analyze(b"\xff\xfe")) == {"keras.malformed"}


def test_finding_count_is_capped() -> None:
    layers = [{"class_name": f"Custom{i}", "config": {"name": str(i)}} for i in range(500)]
    assert len(analyze(keras2(layers))) == 50


# --- .h5 -------------------------------------------------------------------------------


def fake_h5(config: dict[str, Any] | None) -> bytes:
    body = b"" if config is None else json.dumps(config).encode() + b"\x00" * 7
    return H5_MAGIC + b"\x00\x00\x00\x00" + b"\x01" * 300 + body + b"\xff" * 100


def scan_h5(data: bytes) -> list[Finding]:
    return list(scan_keras_h5(FileInput.from_bytes("m.h5", data), ScanContext()))


def test_h5_dispatch_by_magic() -> None:
    fmt = choose_format(FileInput.from_bytes("weights.bin", fake_h5(None)))
    assert fmt is not None and fmt.name == "keras-h5"


def test_h5_raw_search_finds_lambda(tmp_path: Path) -> None:
    sentinel = tmp_path / "h5pwn"
    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "evil",
            "function": [lambda_payload(sentinel), None, None],
            "function_type": "lambda",
        },
    }
    found = scan_h5(fake_h5(keras2([layer])))
    assert "keras.lambda-layer" in ids(found)
    assert not sentinel.exists()


def test_h5_raw_search_clean_model() -> None:
    layers = [{"class_name": "Dense", "config": {"name": "d"}}]
    assert scan_h5(fake_h5(keras2(layers))) == []


def test_h5_truncated_config_still_shows_lambda_marker() -> None:
    data = (
        fake_h5(None)
        + b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config"'
    )
    found = scan_h5(data)
    assert ids(found) == {"keras.lambda-layer"}


def test_h5_without_config_is_unscanned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # as without the airlock[h5] extra
    assert ids(scan_h5(fake_h5(None))) == {"keras.h5-unscanned"}


def test_h5py_real_file(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "m.h5"
    layer = {
        "class_name": "Lambda",
        "config": {"name": "evil", "function": ["AAAA", None, None], "function_type": "lambda"},
    }
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(keras2([layer]))
    found = list(scan_keras_h5(FileInput.from_path(path, "m.h5"), ScanContext()))
    assert ids(found) == {"keras.lambda-layer"}


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_config_bytes(data: bytes) -> None:
    assert all(isinstance(f, Finding) for f in analyze(data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "class_name",
                    "config",
                    "module",
                    "registered_name",
                    "function",
                    "name",
                    "layers",
                    "x",
                ]
            ),
            kids,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_config_structure(obj: Any) -> None:
    assert all(isinstance(f, Finding) for f in analyze(obj))


@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_fuzz_h5(data: bytes) -> None:
    assert all(isinstance(f, Finding) for f in scan_h5(H5_MAGIC + data))
