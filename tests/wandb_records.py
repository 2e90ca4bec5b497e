"""Read back what W&B wrote offline: the records of a ``run-<id>.wandb`` file.

wandb 0.31 writes each run's transaction log in the LevelDB log format (its Go core has
the reader; the Python package no longer ships one): a 7-byte file header (``:W&B``,
the magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each with a 7-byte header
(CRC-32 of the chunk's type byte and data, little-endian length, type: full, first,
middle, last). Each whole record is a ``wandb_internal_pb2.Record`` (wandb's own
protobuf classes), decoded here.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def record_payloads(path: Path) -> list[bytes]:
    """The records' bytes, whole, in the order written; AssertionError on a bad file."""
    data = Path(path).read_bytes()
    assert data[:HEADER] == FILE_HEADER, f"{path} is not a W&B transaction log"
    payloads: list[bytes] = []
    pending: bytes | None = None
    pos = HEADER
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # the block's tail is padding
            pos += room
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zeros: the rest of the block is unused
            pos += room
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        assert zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF == crc, f"bad CRC at {pos}"
        if kind == FULL:
            payloads.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE and pending is not None:
            pending += chunk
        elif kind == LAST and pending is not None:
            payloads.append(pending + chunk)
            pending = None
    return payloads


def read_records(path: Path) -> list[Any]:
    """The file's records as wandb's ``Record`` protobuf messages."""
    from wandb.proto import wandb_internal_pb2

    records = []
    for payload in record_payloads(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records
