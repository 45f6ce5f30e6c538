"""AWS event-stream encoder (standard library only), as Bedrock's invoke-with-response-stream and converse-stream
send it.

Frame: total length, headers length, prelude CRC32, headers, payload, message CRC32 (all big-endian).
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any


def _crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        if not 0 < len(raw_name) <= 0xFF or len(raw_value) > 0xFFFF:
            raise ValueError(f"header out of range: {name!r}")
        out += struct.pack("!B", len(raw_name)) + raw_name
        out += struct.pack("!BH", 7, len(raw_value)) + raw_value  # 7 = string
    return bytes(out)


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    header_bytes = encode_headers(headers)
    total_length = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total_length, len(header_bytes))
    prelude += struct.pack("!I", _crc32(prelude))
    message = prelude + header_bytes + payload
    return message + struct.pack("!I", _crc32(message))


def chunk_frame(event: Any) -> bytes:
    """A `chunk` event frame carrying one Anthropic event (a dict, or raw bytes/str for malformed chunks)."""
    if isinstance(event, dict):
        inner = json.dumps(event, separators=(",", ":")).encode("utf-8")
    else:
        inner = event.encode("utf-8") if isinstance(event, str) else event
    payload = json.dumps({"bytes": base64.b64encode(inner).decode("ascii")}, separators=(",", ":"))
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, payload.encode("utf-8"))


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_frame(headers, json.dumps({"message": message}).encode("utf-8"))



def event_frame(event_type: str, payload: Any) -> bytes:
    """A ConverseStream event frame (`messageStart`, `contentBlockDelta`, ...) with a JSON payload (a dict, or raw
    bytes for a malformed one)."""
    data = json.dumps(payload, separators=(",", ":")).encode("utf-8") if isinstance(payload, dict) else payload
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, data)
