"""Builders for small model trees used across tests (generated, never downloaded)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]] | None = None) -> bytes:
    """A valid safetensors file; tensors map name → (dtype, shape), data zero-filled."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1}
    tensors = tensors or {"w": ("F32", [2, 2])}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"\0" * offset


def clean_model(root: Path) -> Path:
    """A small clean Hugging Face style model directory."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (root / "model.safetensors").write_bytes(safetensors_bytes())
    (root / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    return root


def hf_cache(base: Path, files: dict[str, bytes], rev: str = "a" * 40) -> Path:
    """A Hugging Face cache repo folder whose snapshot links into blobs named by sha256."""
    import hashlib

    repo = base / "models--org--tiny"
    blobs = repo / "blobs"
    snap = repo / "snapshots" / rev
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        os.symlink(os.path.join("..", "..", "blobs", digest), snap / name)
    return repo
