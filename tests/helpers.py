"""Builders for small model trees used across tests (generated, never downloaded)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from airlock.demo.example import safetensors


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]] | None = None) -> bytes:
    """A valid safetensors file; tensors map name → (dtype, shape), data zero-filled."""
    return safetensors(tensors or {"w": ("F32", [2, 2])})


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
