"""Rebuild ``src/airlock/probes/data/pypi-names.bin``, the offline PyPI name snapshot.

Reads a TSV of PyPI projects (first column the name, one header line; by default the
package list of this workplace, ``/work/.library/env/packages/pypi.tsv``), normalises
every name (PEP 503), hashes it and writes the sorted hashes in the compact format that
:mod:`airlock.probes.pypi` reads::

    .venv/bin/python benchmarks/make_pypi_snapshot.py [--tsv PATH] [--out PATH]

Format: ``MAGIC`` (8 bytes), hash bits (u8), name count (u32 LE), note length (u16 LE),
the note (UTF-8, where the names came from), then zlib of the first differences of the
sorted hashes as u64 LE, stored byte plane by byte plane (all low bytes, then the next
…): the high planes are (nearly) all zeros and compress to almost nothing.
See ``airlock.probes.pypi``.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from array import array
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from airlock.probes.pypi import HASH_BITS, MAGIC, name_hash, normalize  # noqa: E402

DEFAULT_TSV = Path("/work/.library/env/packages/pypi.tsv")
DEFAULT_OUT = ROOT / "src" / "airlock" / "probes" / "data" / "pypi-names.bin"


def read_names(tsv: Path) -> tuple[set[str], str]:
    """Normalised names from the TSV's first column, and the newest release month seen."""
    names: set[str] = set()
    newest = ""
    with tsv.open(encoding="utf-8", errors="replace") as f:
        next(f, None)  # header line
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if cols[0].strip():
                names.add(normalize(cols[0].strip()))
            if len(cols) > 2 and cols[2] > newest:
                newest = cols[2]
    return names, newest


def encode(names: set[str], note: str) -> bytes:
    """The snapshot file's bytes for ``names`` (already normalised)."""
    hashes = sorted({name_hash(n) for n in names})
    if len(hashes) != len(names):
        raise SystemExit(f"{len(names) - len(hashes)} hash collisions: raise HASH_BITS")
    deltas = array("Q", [hashes[0]] + [b - a for a, b in pairwise(hashes)])
    if sys.byteorder != "little":
        deltas.byteswap()
    raw = deltas.tobytes()
    planes = b"".join(raw[i::8] for i in range(8))
    note_b = note.encode("utf-8")
    head = MAGIC + struct.pack("<BIH", HASH_BITS, len(hashes), len(note_b)) + note_b
    return head + zlib.compress(planes, 9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tsv", type=Path, default=DEFAULT_TSV)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    if not args.tsv.is_file():
        print(f"error: {args.tsv} not found", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    names, newest = read_names(args.tsv)
    note = f"{len(names)} PyPI project names, newest release month {newest or 'unknown'}"
    data = encode(names, note)
    args.out.write_bytes(data)
    took = time.perf_counter() - t0
    print(f"{args.out}: {len(data):,} bytes, {note} ({took:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
