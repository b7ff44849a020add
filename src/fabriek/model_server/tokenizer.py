"""A small byte-level BPE tokenizer, trained in our own code on a few sentences.

Every text is its UTF-8 bytes (ids 0..255), so any text encodes and decodes back exactly;
learned merges join frequent neighbouring pairs into one id each (256, 257, ...). Text is
first split into chunks (a word with its leading space, or a run of other characters), and
merges never cross a chunk, as GPT-2's tokenizer does.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

_CHUNK = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+|_+")
BYTES = 256


def chunks(text: str) -> list[bytes]:
    """The pieces merges stay within; joined they are exactly `text`'s bytes."""
    return [m.group().encode() for m in _CHUNK.finditer(text)]


def _merge(ids: list[int], pair: tuple[int, int], new: int) -> list[int]:
    out: list[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_merges(texts: Iterable[str], merges: int) -> list[tuple[int, int]]:
    """Up to `merges` merges, the most frequent pair first (ties: the smaller pair)."""
    words = Counter(c for text in texts for c in chunks(text))
    seqs = {w: list(w) for w in words}
    learned: list[tuple[int, int]] = []
    for new in range(BYTES, BYTES + merges):
        pairs: Counter[tuple[int, int]] = Counter()
        for w, seq in seqs.items():
            for pair in itertools.pairwise(seq):
                pairs[pair] += words[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        learned.append(best)
        seqs = {w: _merge(seq, best, new) for w, seq in seqs.items()}
    return learned


class Tokenizer:
    """Encodes text to ids and back with a trained list of merges."""

    def __init__(self, merges: list[tuple[int, int]]) -> None:
        self.merges: list[tuple[int, int]] = [(a, b) for a, b in merges]
        self._rank = {pair: BYTES + i for i, pair in enumerate(self.merges)}
        self._bytes: list[bytes] = [bytes([i]) for i in range(BYTES)]
        for a, b in self.merges:
            self._bytes.append(self._bytes[a] + self._bytes[b])
        self._encode_chunk = lru_cache(maxsize=65536)(self._chunk_ids)

    @property
    def vocab_size(self) -> int:
        """How many ids there are (bytes plus merges)."""
        return len(self._bytes)

    def _chunk_ids(self, chunk: bytes) -> tuple[int, ...]:
        ids = list(chunk)
        while len(ids) > 1:
            ranked = [
                (self._rank.get(p, 1 << 30), i) for i, p in enumerate(itertools.pairwise(ids))
            ]
            rank, _ = min(ranked)
            if rank >= 1 << 30:
                break
            ids = _merge(ids, self.merges[rank - BYTES], rank)
        return tuple(ids)

    def encode(self, text: str) -> list[int]:
        """The ids of `text`."""
        out: list[int] = []
        for chunk in chunks(text):
            out.extend(self._encode_chunk(chunk))
        return out

    def token_bytes(self, token: int) -> bytes:
        """The bytes one id stands for."""
        return self._bytes[token]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` (bytes that are not valid UTF-8 become U+FFFD)."""
        return b"".join(self._bytes[i] for i in ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        """A decoder that turns ids into text one at a time, holding back a character
        whose bytes are split across ids."""
        return StreamDecoder(self)

    def save(self, path: Path) -> None:
        """Write tokenizer.json."""
        path.write_text(json.dumps({"type": "byte-bpe", "merges": self.merges}))

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        """Read tokenizer.json."""
        data = json.loads(path.read_text())
        return cls([(int(a), int(b)) for a, b in data["merges"]])

    @classmethod
    def train(cls, texts: Iterable[str], merges: int) -> Tokenizer:
        """A tokenizer with up to `merges` merges learned from `texts`."""
        return cls(train_merges(texts, merges))


class StreamDecoder:
    """Text of a stream of ids, piece by piece (an incremental UTF-8 decoder)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token: int) -> str:
        """The text that `token` completes (may be empty)."""
        return self._utf8.decode(self._tokenizer.token_bytes(token))

    def flush(self) -> str:
        """Whatever is held back at the end."""
        return self._utf8.decode(b"", final=True)
