"""Iggy's describe_options (code 13): which option keys metavsr understands, per scope.

Why a module: the SDK's `describe_options(scope)` is how an application discovers option keys
without reading our docs; the answer is static (no state, no log slot), so the net role gives
it. Topics have the documented keys of domains/topic_options.py; streams and users take only
free-form String options, so their lists are empty. Defaults are what metavsr assumes when a
key is absent; a key metavsr only stores for the message plane has no default (empty value).
"""

from __future__ import annotations

import struct

from domains import topic_options
from domains.codec import KIND_BOOL, KIND_STRING

SCOPE_TOPIC, SCOPE_STREAM, SCOPE_USER = 1, 2, 3
SCOPES = (SCOPE_TOPIC, SCOPE_STREAM, SCOPE_USER)

# key -> (default in the key's kind encoding, or b"" for none; description)
_TOPIC: dict[str, tuple[bytes, str]] = {
    "compression_algorithm": (b"none", "Compression of stored batches: none or gzip; sets the "
                                       "topic's compression field."),
    "consumer_offset_durability": (b"replicated", "Consumer offsets: replicated or persisted."),
    "durability": (b"replicated", "Messages: replicated or persisted."),
    "max_topic_size": (struct.pack("<Q", 0), "Bytes; 0 = server default, u64::MAX = "
                                             "unlimited; at least segment_size."),
    "message_expiry": (struct.pack("<Q", 0), "Microseconds; 0 = server default, u64::MAX = "
                                             "never expire."),
    "messages_required_to_save": (b"", "Messages buffered before a save; > 0. Stored for "
                                       "the message plane."),
    "preallocate_segments": (b"\x00", "Preallocate segment files. Stored for the message "
                                      "plane."),
    "segment_size": (b"", "Segment size in bytes; > 0. Stored for the message plane."),
    "size_of_messages_required_to_save": (b"", "Bytes buffered before a save. Stored for the "
                                               "message plane."),
}
assert _TOPIC.keys() == topic_options.DOCUMENTED.keys()
assert topic_options.DOCUMENTED["preallocate_segments"] == KIND_BOOL
assert topic_options.DOCUMENTED["durability"] == KIND_STRING


def body(scope: int) -> bytes:
    """The reply body for `scope` (1 topic, 2 stream, 3 user); ValueError for another."""
    if scope not in SCOPES:
        raise ValueError(f"unknown options scope {scope}")
    specs = _TOPIC if scope == SCOPE_TOPIC else {}
    out = bytearray(struct.pack("<I", len(specs)))
    for key, (default, description) in specs.items():
        encoded = key.encode()
        text = description.encode()
        out += bytes((len(encoded),)) + encoded + bytes((topic_options.DOCUMENTED[key],))
        out += struct.pack("<I", len(default)) + default + struct.pack("<I", len(text)) + text
    return bytes(out)
