"""Offline PyPI name snapshot, and the package names an answer asks you to install.

The snapshot (``data/pypi-names.bin``, rebuilt by ``benchmarks/make_pypi_snapshot.py``)
holds every PyPI project name known when it was made, as 44-bit BLAKE2b hashes of the
PEP 503 normalised names: sorted, stored as first differences (u64, byte plane by byte
plane), zlib. That is 2.9 MB for ~886k names (the names themselves, sorted and
newline-joined, are 12.7 MB raw, 4.0 MB zlib, 3.3 MB xz), loads once, lazily, in about
0.1 s and takes ~7 MB of memory (an ``array`` searched with ``bisect``: ~2 µs a lookup).
A hash can collide with a real name: the chance that an invented name is taken for a
real one is count / 2**44, about 5 in 100 million.
Real names are never reported unknown.

``required_packages(text)`` reads what an answer tells the user to install: ``pip
install`` / ``uv add`` / ``poetry add`` commands, ``import`` lines in Python code
(import names mapped to distributions where they differ, standard library skipped) and
requirements-style code blocks. ``unknown_packages(text)`` keeps those not on PyPI.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
import struct
import sys
import zlib
from array import array
from importlib.resources import files
from itertools import accumulate
from typing import NamedTuple

from airlock.probes.detectors._text import code_blocks, without_code

MAGIC = b"APYPI002"
HASH_BITS = 44
_HEAD = struct.Struct("<BIH")


class SnapshotError(RuntimeError):
    """The packaged snapshot is missing or damaged (reinstall airlock)."""


class SnapshotInfo(NamedTuple):
    """What the loaded snapshot holds."""

    names: int
    note: str
    hash_bits: int
    size_bytes: int

    @property
    def false_positive_rate(self) -> float:
        """Chance that a name not on PyPI hashes onto a real one."""
        return float(self.names / 2**self.hash_bits)


class _Snapshot(NamedTuple):
    hashes: array[int]
    info: SnapshotInfo


_NORM = re.compile(r"[-_.]+")
_VALID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


def normalize(name: str) -> str:
    """PEP 503 normalised form: lower case, runs of ``-_.`` become one ``-``."""
    return _NORM.sub("-", name).lower()


def name_hash(normalized: str) -> int:
    """The snapshot's hash of an already normalised name."""
    digest = hashlib.blake2b(normalized.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - HASH_BITS)


def _decode(data: bytes) -> _Snapshot:
    if data[: len(MAGIC)] != MAGIC:
        raise SnapshotError("PyPI snapshot: not an airlock snapshot (bad magic)")
    try:
        bits, count, note_len = _HEAD.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + _HEAD.size
        note = data[start : start + note_len].decode("utf-8")
        planes = zlib.decompress(data[start + note_len :])
    except (struct.error, zlib.error, UnicodeDecodeError) as exc:
        raise SnapshotError(f"PyPI snapshot is damaged: {exc}") from None
    if bits != HASH_BITS or len(planes) != 8 * count:
        raise SnapshotError("PyPI snapshot: unexpected hash width or length")
    raw = bytearray(8 * count)
    for i in range(8):  # undo the byte planes: C-speed slice assignments
        raw[i::8] = planes[i * count : (i + 1) * count]
    deltas = array("Q")
    deltas.frombytes(bytes(raw))
    if sys.byteorder != "little":
        deltas.byteswap()
    hashes = array("Q", accumulate(deltas))
    return _Snapshot(hashes, SnapshotInfo(count, note, bits, len(data)))


@functools.cache
def _snapshot() -> _Snapshot:
    try:
        data = files("airlock.probes").joinpath("data/pypi-names.bin").read_bytes()
    except OSError as exc:
        raise SnapshotError(f"PyPI snapshot missing: {exc}") from None
    return _decode(data)


def snapshot_info() -> SnapshotInfo:
    """Count, provenance note, hash width and file size of the packaged snapshot."""
    return _snapshot().info


def known(name: str) -> bool:
    """Whether ``name`` (any spelling PEP 503 folds together) is a PyPI project.

    Raises:
        SnapshotError: the packaged snapshot is missing or damaged.
    """
    if not _VALID.match(name):
        return False
    hashes = _snapshot().hashes
    h = name_hash(normalize(name))
    i = bisect.bisect_left(hashes, h)
    return i < len(hashes) and hashes[i] == h


# Import names whose distribution is called something else (common cases).
IMPORT_TO_DIST = {
    "yaml": "pyyaml",
    "cv2": "opencv-python",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jwt": "pyjwt",
    "Crypto": "pycryptodome",
    "Cryptodome": "pycryptodomex",
    "OpenSSL": "pyopenssl",
    "magic": "python-magic",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "serial": "pyserial",
    "usb": "pyusb",
    "gi": "pygobject",
    "win32api": "pywin32",
    "win32con": "pywin32",
    "win32com": "pywin32",
    "pythoncom": "pywin32",
    "zmq": "pyzmq",
    "MySQLdb": "mysqlclient",
    "telegram": "python-telegram-bot",
    "discord": "discord.py",
    "fitz": "pymupdf",
    "faiss": "faiss-cpu",
    "ldap": "python-ldap",
    "nacl": "pynacl",
    "jose": "python-jose",
    "multipart": "python-multipart",
    "Bio": "biopython",
    "attr": "attrs",
    "git": "gitpython",
    "github": "pygithub",
    "slugify": "python-slugify",
    "socks": "pysocks",
    "pkg_resources": "setuptools",
    "mpl_toolkits": "matplotlib",
    "websocket": "websocket-client",
    "kafka": "kafka-python",
    "socketio": "python-socketio",
    "engineio": "python-engineio",
    "ruamel": "ruamel.yaml",
    "google": "protobuf",
}
_PLACEHOLDERS = frozenset(
    [
        "package",
        "package-name",
        "packagename",
        "your-package",
        "library",
        "library-name",
        "module-name",
        "name",
        "pkg",
        "foo",
        "bar",
        "baz",
        "xxx",
        "example",
        "some-package",
    ]
)
_STDLIB = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)
_NOT_PYTHON = frozenset(
    [
        "js",
        "javascript",
        "ts",
        "typescript",
        "jsx",
        "tsx",
        "go",
        "rust",
        "rs",
        "java",
        "kotlin",
        "c",
        "cpp",
        "c++",
        "csharp",
        "cs",
        "swift",
        "ruby",
        "rb",
        "php",
        "scala",
        "dart",
        "json",
        "html",
        "css",
        "sql",
    ]
)

_INSTALLER = (
    r"(?:\bpip3?|\bpython3?\s+-m\s+pip|\buv\s+pip|\bpipenv)\s+install\b"
    r"|\b(?:uv|poetry|pdm|rye)\s+add\b"
)
_COMMAND = re.compile(rf"(?:{_INSTALLER})(?P<args>[^\n`;&|)，。；、（）]*)")
_LINE_COMMAND = re.compile(rf"^\s*(?:[$>%!#]\s*)?(?:sudo\s+)?(?:{_INSTALLER})")
_INLINE = re.compile(r"`([^`\n]+)`")
_VALUE_OPTIONS = frozenset(
    [
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--python",
        "--group",
        "-g",
        "--source",
        "--only-binary",
        "--no-binary",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
    ]
)
_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*"
    r"(?:(?:===|==|>=|<=|~=|!=|<|>)\s*[\w.*+!-]+(?:\s*,\s*(?:===|==|>=|<=|~=|!=|<|>)\s*[\w.*+!-]+)*)?"
    r"\s*(?:@\s*\S+)?\s*(?:;.*)?$"
)
_SPECIFIER = re.compile(r"===|==|>=|<=|~=|!=|<|>")
_IMPORT = re.compile(
    r"^[ \t]*(?:import[ \t]+(?P<mods>[\w.]+(?:[ \t]+as[ \t]+\w+)?"
    r"(?:[ \t]*,[ \t]*[\w.]+(?:[ \t]+as[ \t]+\w+)?)*)[ \t]*(?:#.*)?$"
    r"|from[ \t]+(?P<src>\.*[\w.]*)[ \t]+import\b)",
    re.M,
)
_LOCAL_FILE = re.compile(r"\b([A-Za-z_]\w*)\.py\b")
_REQ_LANGS = frozenset(("", "text", "txt", "requirements", "requirements.txt", "pip", "ini"))


def _requirement_name(token: str) -> str | None:
    token = token.strip("'\"")
    if not token or token.startswith(("-", ".", "/", "~")) or "/" in token or ":" in token:
        return None
    m = _REQUIREMENT.match(token)
    if m is None or token.endswith((".whl", ".zip", ".gz")):
        return None
    name = m["name"]
    return None if normalize(name) in _PLACEHOLDERS else name


def _command_names(args: str, first_only: bool) -> list[str]:
    names: list[str] = []
    skip = False
    for token in args.split():
        if skip:
            skip = False
            continue
        if token.startswith("-"):
            skip = token in _VALUE_OPTIONS
            continue
        name = _requirement_name(token)
        if name:
            names.append(name)
        if first_only:
            break
    return names


def _has_command(text: str) -> bool:
    return "install" in text or " add " in text


def _install_commands(text: str) -> list[str]:
    """Names from install commands: all arguments in code, the first one in prose."""
    if not _has_command(text):
        return []
    names: list[str] = []
    for block in code_blocks(text):
        if _has_command(block.code):
            for m in _COMMAND.finditer(block.code):
                names += _command_names(m["args"], first_only=False)
    prose = without_code(text)
    if not _has_command(prose):
        return names
    for span in _INLINE.findall(prose) if "`" in prose else ():
        for m in _COMMAND.finditer(span):
            names += _command_names(m["args"], first_only=False)
    for line in _INLINE.sub(" ", prose).splitlines():
        if _has_command(line):
            whole = _LINE_COMMAND.match(line) is not None
            for m in _COMMAND.finditer(line):
                names += _command_names(m["args"], first_only=not whole)
    return names


def _imports(code: str, local: set[str]) -> list[str]:
    names: list[str] = []
    for m in _IMPORT.finditer(code):
        mods = [m["src"]] if m["src"] is not None else m["mods"].split(",")
        for mod in mods:
            top = mod.strip().split()[0].split(".")[0] if mod.strip() else ""
            if not top or mod.strip().startswith(".") or top in _STDLIB or top in local:
                continue
            if top != "__future__":
                names.append(IMPORT_TO_DIST.get(top, top))
    return names


def _requirements_block(lang: str, code: str, before: str) -> list[str]:
    lines = [ln.split("#", 1)[0].strip() for ln in code.splitlines()]
    lines = [ln for ln in lines if ln]
    if lang not in _REQ_LANGS or not lines or len(lines) > 200:
        return []
    if not all(_REQUIREMENT.match(ln) for ln in lines):
        return []
    labelled = "requirements" in lang or "requirements" in before[-200:].lower()
    if not labelled and not any(_SPECIFIER.search(ln) for ln in lines):
        return []
    return [m["name"] for ln in lines if (m := _REQUIREMENT.match(ln))]


def _required(text: str) -> dict[str, tuple[str, bool]]:
    """Normalised name → (name as written, came only from an import line)."""
    found: dict[str, tuple[str, bool]] = {}
    for name in _install_commands(text):
        found.setdefault(normalize(name), (name, False))
    local = set(_LOCAL_FILE.findall(text)) if ".py" in text else set()
    blocks = code_blocks(text)
    pos = 0
    for block in blocks:
        at = text.find(block.code, pos)
        for name in _requirements_block(block.lang, block.code, text[max(0, at - 200) : at]):
            found.setdefault(normalize(name), (name, False))
        pos = max(pos, at)
    sources = [b.code for b in blocks if b.lang not in _NOT_PYTHON] if blocks else [text]
    for code in sources:
        for name in _imports(code, local) if "import" in code else ():
            found.setdefault(normalize(name), (name, True))
    return found


def required_packages(text: str) -> list[str]:
    """Distribution names ``text`` tells the reader to install or import, first seen first.

    Standard-library modules, relative imports and modules the answer itself defines
    (``something.py``) are left out; import names map to distributions where the two
    differ (``yaml`` → ``pyyaml``).
    """
    return [name for name, _ in _required(text).values()]


def unknown_packages(text: str) -> list[str]:
    """The names from :func:`required_packages` that are not PyPI projects.

    An import name that is part of an installed, known distribution's name
    (``import foo`` after ``pip install python-foo``) counts as covered.

    Raises:
        SnapshotError: the packaged snapshot is missing or damaged.
    """
    required = _required(text)
    installed = [norm for norm, (name, imp) in required.items() if not imp and known(name)]
    unknown = []
    for norm, (name, from_import) in required.items():
        if known(name):
            continue
        if from_import and any(norm in dist for dist in installed):
            continue
        unknown.append(name)
    return unknown
