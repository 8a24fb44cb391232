"""Record bodies compressed with a zstd dictionary trained on each shard's own records.

Log lines are short and alike: compressed one by one without a dictionary they barely shrink,
with a dictionary learnt from a few thousand of their neighbours they shrink three to five
times, and each one still decompresses alone (about a microsecond) for random access.

A body is one codec byte followed by the payload: ``0`` = stored as is, ``n`` = zstd with the
shard's dictionary ``n``. The first records of a shard are stored as is until there are enough
to learn from.
"""

from __future__ import annotations

import sqlite3

import zstandard

RAW = 0
#: Records needed before a dictionary is trained.
TRAIN_AFTER = 2_000
TRAIN_SAMPLES = 5_000
DICT_BYTES = 64 * 1024
LEVEL = 3
_RAW_PREFIX = bytes([RAW])


class ShardWriterCodec:
    def __init__(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT id, dictionary FROM codecs ORDER BY id DESC LIMIT 1").fetchone()
        self.dict_id = RAW
        self._compressor: zstandard.ZstdCompressor | None = None
        self.raw_rows = 0
        if row is not None:
            self._use(row[0], row[1])
        else:
            self.raw_rows = conn.execute("SELECT count(*) FROM records").fetchone()[0]

    def _use(self, dict_id: int, data: bytes) -> None:
        self.dict_id = dict_id
        self._compressor = zstandard.ZstdCompressor(
            dict_data=zstandard.ZstdCompressionDict(data), level=LEVEL, write_checksum=False,
            write_dict_id=False,
        )

    def prepare(self, conn: sqlite3.Connection, payloads: list[bytes]) -> None:
        """Train this shard's dictionary once enough records exist (inside the write transaction)."""
        if self._compressor is not None or self.raw_rows + len(payloads) < TRAIN_AFTER:
            return
        samples = payloads[-TRAIN_SAMPLES:]
        if len(samples) < TRAIN_SAMPLES:
            rows = conn.execute(
                "SELECT body FROM records ORDER BY id DESC LIMIT ?", (TRAIN_SAMPLES - len(samples),)
            ).fetchall()
            samples += [bytes(r[0][1:]) for r in rows if r[0][:1] == _RAW_PREFIX]
        try:
            trained = zstandard.train_dictionary(DICT_BYTES, list[bytes | bytearray | memoryview](samples), level=LEVEL)
        except zstandard.ZstdError:  # too few or too uniform samples: try again later
            self.raw_rows = 0
            return
        data = trained.as_bytes()
        cur = conn.execute("INSERT INTO codecs (dictionary) VALUES (?)", (data,))
        assert cur.lastrowid is not None
        self._use(cur.lastrowid, data)

    def encode_many(self, payloads: list[bytes]) -> list[bytearray]:
        """Bodies for a batch. One call for the whole batch: zstd works without holding the GIL.

        Bodies are ``bytearray``s: sqlite3 binds them directly, while for each ``bytes`` value it
        first looks for an adapter (about a third of the cost of inserting a row)."""
        if self._compressor is None:
            self.raw_rows += len(payloads)
            raw = bytearray(_RAW_PREFIX)
            return [raw + p for p in payloads]
        prefix = bytearray([self.dict_id])
        compressed = self._compressor.multi_compress_to_buffer(list[bytes | bytearray | memoryview](payloads))
        return [prefix + compressed[i].tobytes() for i in range(len(compressed))]


class ShardReaderCodec:
    """Decompressors for one shard, for one thread (zstd contexts are not shared across threads)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}

    def decode(self, body: bytes) -> bytes:
        codec = body[0]
        if codec == RAW:
            return body[1:]
        dec = self._decompressors.get(codec)
        if dec is None:
            row = self._conn.execute("SELECT dictionary FROM codecs WHERE id = ?", (codec,)).fetchone()
            if row is None:
                raise ValueError(f"record body uses unknown dictionary {codec}")
            dec = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(row[0]))
            self._decompressors[codec] = dec
        return dec.decompress(body[1:])
