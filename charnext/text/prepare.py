"""Corpora larger than memory: a text encoded once into a memory-mapped token file.

`prepare()` reads a UTF-8 file twice, a chunk at a time, so memory stays flat whatever its
size: the first pass builds the vocabulary (order of first appearance, counts) and the text's
fingerprint, the second encodes it. A prepared folder holds

    tokens.bin   the encoded text: raw little-endian integers, one per character, in the
                 smallest type that holds the vocabulary (uint8, int16 or int32)
    meta.json    format, version, dtype, length, the vocabulary (characters in index order),
                 their counts, and the source's fingerprint (characters, sha256 of its bytes)

Several files (or folders' text files) stay apart: tokens.bin holds them end to end, meta.json
lists each (`documents`: path, length, sha256) so that no training window spans two, and the
fingerprint is `reading.documents_fingerprint`'s, as `train --file A --file B` records.

`load_prepared()` checks meta.json against tokens.bin and maps the tokens without reading
them: training then touches only the windows it uses. The fingerprint is the one
`data.fingerprint` gives for the same text, so a checkpoint trained with `--file BIG.txt`
resumes with `--data DIR` and the other way round.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from charnext.errors import OutputExists, PreparedDataError, TextError
from charnext.text.paths import shown_path
from charnext.text.reading import documents_fingerprint, file_size, named_files
from charnext.text.vocab import Vocab, VocabBuilder

FORMAT = "charnext-tokens"
FORMAT_VERSION = 1
TOKENS = "tokens.bin"
META = "meta.json"
# Bytes read at a time. 4 MiB keeps memory flat (measured: 16 MiB chunks let glibc's heap grow
# with the file, as its temporaries land above the malloc mmap threshold) and the passes fast.
CHUNK_BYTES = 1 << 22

Progress = Callable[[str, int, int], None]  # (phase, bytes done, bytes in all)
_NUMPY = {torch.uint8: np.dtype("uint8"), torch.int16: np.dtype("int16"), torch.int32: np.dtype("int32")}


@dataclass
class PrepareResult:
    """What `prepare` wrote."""

    path: Path  # the prepared folder
    characters: int  # characters in the text (= tokens)
    bytes: int  # bytes of the UTF-8 source
    vocab_size: int
    dtype: str  # numpy name of the token type
    seconds: float  # wall-clock time of both passes
    files: int = 1  # files encoded, each a document of its own
    skipped: int = 0  # files of the folders given left out as not UTF-8 text

    @property
    def mb_per_sec(self) -> float:
        """Source megabytes (10^6 bytes) encoded per second, both passes included."""
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return {
            "path": str(self.path),
            "characters": self.characters,
            "bytes": self.bytes,
            "vocab_size": self.vocab_size,
            "dtype": self.dtype,
            "seconds": self.seconds,
            "mb_per_sec": self.mb_per_sec,
            "files": self.files,
            "skipped": self.skipped,
        }


@dataclass
class PreparedData:
    """A prepared corpus: its vocabulary, and its tokens mapped from disk (never read whole)."""

    path: Path  # the prepared folder
    vocab: Vocab
    tokens: torch.Tensor  # (length,) indices in the vocabulary's dtype, backed by tokens.bin
    fingerprint: dict  # {"length", "sha256"} of the source text, as data.fingerprint gives
    counts: list[int]  # occurrences of each vocabulary entry, index order
    meta: dict = field(repr=False)  # meta.json as read
    lengths: list[int] | None = None  # several files: each one's length in tokens, in order

    def require_vocab(self, chars: list[str] | tuple[str, ...], checkpoint: str | Path) -> None:
        """Refuse a checkpoint whose vocabulary is not this data's, index for index."""
        if tuple(chars) != self.vocab.chars:
            raise TextError(
                f"{shown_path(checkpoint)} has a vocabulary of {len(chars)} characters in another order than "
                f"the {len(self.vocab)} of {shown_path(self.path)}; resume it with --file on the text instead"
            )


def read_chunks(path: str | Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[bytes, str]]:
    """The UTF-8 file a chunk at a time: (raw bytes, the text decoded so far from them).

    A multi-byte character split between two chunks is decoded whole with the second; invalid
    UTF-8 raises a TextError naming its byte offset in the file.
    """
    path = Path(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    fed = 0  # bytes given to the decoder so far
    try:
        f = open(path, "rb")  # noqa: SIM115 - a with-block below closes it
    except FileNotFoundError:
        raise TextError(f"no such file: {shown_path(path)}") from None
    except IsADirectoryError:
        raise TextError(f"{shown_path(path)} is a directory, not a text file") from None
    except OSError as e:
        raise TextError(f"cannot read {shown_path(path)}: {e.strerror or e}") from None
    with f:
        while True:
            raw = f.read(chunk_bytes)
            pending = len(decoder.getstate()[0])  # bytes of a character split at the last chunk
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                offset = fed - pending + e.start
                bad = e.object[e.start : e.start + 4].hex(" ")
                raise TextError(
                    f"{shown_path(path)} is not valid UTF-8: "
                    f"invalid byte sequence at byte offset {offset} ({bad})"
                ) from None
            fed += len(raw)
            yield raw, text
            if not raw:
                return


def prepare(
    source: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    on_progress: Progress | None = None,
    force: bool = False,
) -> PrepareResult:
    """Encode the UTF-8 file `source` into the folder `out` (tokens.bin and meta.json); or
    several files and folders (a list), each file a document of its own.

    Memory stays about a few times `chunk_bytes` whatever the file's size. The folder is
    created if needed; meta.json is written last, so an interrupted run leaves no folder that
    loads as complete. An `out` that would lose what is not charnext's is refused at once
    unless `force` (`check_out_folder`).
    """
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(x) for x in source]
    out = Path(out)
    if chunk_bytes < 1:
        raise TextError(f"chunk size must be at least 1 byte, not {chunk_bytes}")
    check_out_folder(out, force)
    start = time.perf_counter()
    files = [(f, f == given) for f, given in named_files(sources)]  # (path, given by name) in order
    sizes = [file_size(f) for f, _ in files]
    builder, documents, kept = _first_passes(files, sizes, chunk_bytes, on_progress)
    skipped = len(files) - len(kept)
    if not kept:
        raise TextError(f"{shown_path(sources[0])} holds no text files ({skipped} not UTF-8 text)")
    length = sum(d["length"] for d in documents)
    if len(kept) > 1 and length < 2:
        raise TextError(f"the {len(kept)} files have {length} characters; at least 2 are needed")
    one = {"length": length, "sha256": documents[0]["sha256"]}  # a single file's own fingerprint
    fp = documents_fingerprint(documents) if len(kept) > 1 else one
    vocab = builder.build()
    dtype = _NUMPY[vocab.dtype]  # uint8, int16 or int32

    # pass 2: encode, into a temporary file renamed at the end
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TextError(f"cannot create {shown_path(out)}: {e.strerror or e}") from None
    (out / META).unlink(missing_ok=True)  # the folder is incomplete until the new meta.json
    _encode(kept, documents, out / TOKENS, vocab, dtype, chunk_bytes, on_progress)
    chars = vocab.chars
    kept_bytes = sum(n for _, n in kept)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtype.name, "length": length,
        "vocab": list(chars), "counts": [builder.counts[ord(c)] for c in chars], "text": fp,
        "source": {"path": str(kept[0][0]), "bytes": kept_bytes},
    }  # fmt: skip
    if len(kept) > 1:  # each file a document: where training must not read across
        meta["source"] = {"files": len(kept), "skipped": skipped, "bytes": kept_bytes}
        meta["documents"] = documents
    _write_json(out / META, meta)
    return PrepareResult(
        out, length, kept_bytes, len(chars), dtype.name, time.perf_counter() - start, len(kept), skipped
    )


def check_out_folder(out: Path, force: bool = False) -> None:
    """Refuse, before the first pass, an `out` that prepare cannot use or would spoil: a file
    (TextError: prepare writes a folder, and never replaces a file by one), or, unless `force`,
    a folder whose meta.json is not a prepared folder's or that holds a tokens.bin with no
    meta.json (another tool's, or a prepare that was interrupted: --force then), as
    `OutputExists`. Other files in the folder are never touched; an empty meta.json or
    tokens.bin passes."""
    if out.exists() and not out.is_dir():
        raise TextError(f"--out {shown_path(out)} is a file; prepare writes a folder (give another --out)")
    if force or not out.is_dir():
        return
    meta, tokens = out / META, out / TOKENS
    if meta.is_file() and meta.stat().st_size:
        try:
            _read_meta(out, meta)
        except PreparedDataError:
            raise OutputExists(shown_path(meta), "", "not the meta.json of charnext prepared data") from None
    elif tokens.is_file() and tokens.stat().st_size:
        raise OutputExists(shown_path(tokens), "", f"not charnext's (no {META} of prepared data beside it)")


def _first_passes(files: list[tuple[Path, bool]], sizes: list[int], chunk_bytes: int, on_progress):
    """Pass 1 over every file: the vocabulary of all (a builder), each text file's record
    (path, length, sha256), and the files kept (path, bytes)."""
    builder, documents, kept, done = VocabBuilder(), [], [], 0
    for (path, named), n in zip(files, sizes):
        strict = named or len(files) == 1  # a file named, or the only one: its errors are the user's
        part = _first_pass(path, chunk_bytes, n, _offset(on_progress, done, sum(sizes)), strict)
        done += n
        if part is not None:  # None: a file of a folder that is not UTF-8 text, skipped
            builder.extend(part[0])
            documents.append({"path": str(path.resolve()), "length": part[2], "sha256": part[1].hexdigest()})
            kept.append((path, n))
    return builder, documents, kept


def _offset(on_progress: Progress | None, before: int, total: int) -> Progress | None:
    """Progress of one file among several, as progress over all of them."""
    return on_progress and (lambda phase, done, _size: on_progress(phase, before + done, total))


def _first_pass(source: Path, chunk_bytes: int, size: int, on_progress: Progress | None, strict: bool = True):
    """Pass 1: the vocabulary (a builder with its counts), the sha256 and the length in
    characters of the text. Not `strict` (a file found in a folder): None for a file that is
    not UTF-8 text (invalid, or holding a NUL byte), and any length allowed."""
    builder, sha, length, done = VocabBuilder(), hashlib.sha256(), 0, 0
    try:
        for raw, piece in read_chunks(source, chunk_bytes):
            if not strict and b"\0" in raw:
                return None
            builder.update(piece)
            sha.update(raw)  # valid UTF-8: the same bytes as data.fingerprint hashes
            length += len(piece)
            done += len(raw)
            if on_progress is not None:
                on_progress("vocabulary", done, size)
    except TextError:
        if strict:
            raise
        return None
    if strict and length < 2:
        raise TextError(
            f"{source} has {length} character{'s' if length != 1 else ''}; "
            "at least 2 are needed (one to read, one to predict)"
        )
    return builder, sha, length


def _encode(files: list[tuple[Path, int]], documents: list[dict], path: Path, vocab, dtype: np.dtype,
            chunk_bytes: int, on_progress: Progress | None) -> None:  # fmt: skip
    """Pass 2: encode the files (path, bytes) one after another into `path`, through a temporary
    file renamed at the end; each must still be the text pass 1 read (`documents`: its length
    and sha256)."""
    tmp = path.with_name(f".{path.name}.tmp")
    size, done = sum(n for _, n in files), 0
    try:
        with open(tmp, "wb") as f:
            for (source, _), expected in zip(files, documents):
                check, written = hashlib.sha256(), 0
                for raw, piece in read_chunks(source, chunk_bytes):
                    check.update(raw)
                    tokens = vocab.encode(piece).numpy()  # the compact dtype: 1, 2 or 4 bytes a character
                    f.write(memoryview(tokens.astype(dtype.newbyteorder("<"), copy=False)))
                    written += len(tokens)
                    done += len(raw)
                    if on_progress is not None:
                        on_progress("encoding", done, size)
                if (written, check.hexdigest()) != (expected["length"], expected["sha256"]):
                    raise TextError(f"{source} changed while it was being prepared; run prepare again")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_meta(path: Path, meta_path: Path) -> dict:
    """meta.json of a prepared folder, read and checked to be charnext's, in a format this reads."""
    if not meta_path.is_file():
        raise PreparedDataError(
            f"{shown_path(path)} holds no {META}: not prepared data, or `charnext prepare` did not finish"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PreparedDataError(f"{shown_path(meta_path)} is unreadable: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PreparedDataError(f"{shown_path(meta_path)} does not describe charnext prepared data")
    if not isinstance(meta.get("format_version"), int) or meta["format_version"] > FORMAT_VERSION:
        raise PreparedDataError(
            f"{shown_path(path)} has prepared-data format {meta.get('format_version')!r}; "
            f"this charnext reads format {FORMAT_VERSION} (prepare the text again, or upgrade charnext)"
        )
    return meta


def load_prepared(path: str | Path) -> PreparedData:
    """A prepared folder, checked, with its tokens memory-mapped read-only."""
    path = Path(path)
    meta_path, tokens_path = path / META, path / TOKENS
    if not path.is_dir():
        raise PreparedDataError(
            f"no prepared data folder {shown_path(path)} (make one with `charnext prepare`)"
        )
    meta = _read_meta(path, meta_path)
    length, chars, counts, text = meta.get("length"), meta.get("vocab"), meta.get("counts"), meta.get("text")
    dtype = {d.name: d for d in _NUMPY.values()}.get(meta.get("dtype"))
    ok = (
        isinstance(length, int)
        and length >= 2
        and isinstance(chars, list)
        and isinstance(counts, list)
        and len(counts) == len(chars)
        and all(isinstance(n, int) and n >= 0 for n in counts)
        and sum(counts) == length
        and isinstance(text, dict)
        and text.get("length") == length
        and isinstance(text.get("sha256"), str)
        and dtype is not None
    )
    if not ok:
        raise PreparedDataError(f"{shown_path(meta_path)} is damaged: a field is missing or inconsistent")
    try:
        vocab = Vocab(tuple(chars))
    except (TypeError, ValueError) as e:
        raise PreparedDataError(f"{shown_path(meta_path)} is damaged: {e}") from None
    if _NUMPY[vocab.dtype] != dtype:
        raise PreparedDataError(
            f"{shown_path(meta_path)} is damaged: dtype {meta['dtype']} does not fit its vocabulary"
        )
    expected = length * dtype.itemsize
    try:
        actual = tokens_path.stat().st_size
    except FileNotFoundError:
        raise PreparedDataError(f"{shown_path(path)} holds no {TOKENS}; prepare the text again") from None
    if actual != expected:
        raise PreparedDataError(
            f"{shown_path(tokens_path)} has {actual:,} bytes, but {META} describes {length:,} tokens of "
            f"{meta['dtype']} ({expected:,} bytes); prepare the text again"
        )
    array = np.memmap(tokens_path, dtype=dtype.newbyteorder("<"), mode="r", shape=(length,))
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts read a converted copy
        array = array.astype(dtype)
    with warnings.catch_warnings():
        # torch warns that it cannot protect a read-only array from writes; nothing writes to
        # the tokens (training only slices and copies windows), and a read-only map keeps the
        # file safe and shared between the processes of a run.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        tokens = torch.from_numpy(array)
    fp = {"length": length, "sha256": text["sha256"]}
    return PreparedData(path, vocab, tokens, fp, counts, meta, _document_lengths(meta, length, meta_path))


def _document_lengths(meta: dict, length: int, meta_path: Path) -> list[int] | None:
    """The lengths of the files a prepared folder holds end to end (None: a single text)."""
    documents = meta.get("documents")
    if documents is None:
        return None
    lengths = [d.get("length") if isinstance(d, dict) else None for d in documents or [""]]
    if not all(isinstance(n, int) and n >= 0 for n in lengths) or sum(lengths) != length:
        raise PreparedDataError(f"{shown_path(meta_path)} is damaged: its documents do not add up")
    return lengths
