"""The documented topic options (iggy-protocol.md section 7) and the fixed fields they set.

Owns: which option keys a topic understands, the kind and values each accepts, and the
derivation of the topic header's fixed fields (compression, message expiry, max size) from the
options map. Keys not documented here are free-form and must be String-valued. Pure
functions: must never hold state or decide anything about existing topics.
"""

from __future__ import annotations

from domains.codec import KIND_BOOL, KIND_STRING, U32, U64, U64_MAX, Options
from domains.errors import INVALID_OPTION_VALUE, INVALID_TOPIC_SIZE, DomainError

COMPRESSION_NONE = 1
COMPRESSION_GZIP = 2
COMPRESSIONS = {b"none": COMPRESSION_NONE, b"gzip": COMPRESSION_GZIP}
DURABILITIES = (b"replicated", b"persisted")
KIND_U32, KIND_U64 = 11, 12

# key -> value kind it must have.
DOCUMENTED: dict[str, int] = {
    "compression_algorithm": KIND_STRING,
    "consumer_offset_durability": KIND_STRING,
    "durability": KIND_STRING,
    "max_topic_size": KIND_U64,
    "message_expiry": KIND_U64,
    "messages_required_to_save": KIND_U32,
    "preallocate_segments": KIND_BOOL,
    "segment_size": KIND_U64,
    "size_of_messages_required_to_save": KIND_U64,
}

# message_expiry: 0 = server default, U64_MAX = never expire. max_topic_size: 0 = server
# default, U64_MAX = unlimited. Both are kept as given; readers interpret them.
DEFAULT_FIXED = (COMPRESSION_NONE, 0, 0)


def check(options: Options) -> None:
    """Static check of a topic options map (create, or an update's patch)."""
    for key, (kind, value) in options.items():
        want = DOCUMENTED.get(key)
        if want is None:
            if kind != KIND_STRING:
                raise DomainError(INVALID_OPTION_VALUE)
            continue
        if kind != want:
            raise DomainError(INVALID_OPTION_VALUE)
        if key == "compression_algorithm" and value not in COMPRESSIONS:
            raise DomainError(INVALID_OPTION_VALUE)
        if key.endswith("durability") and value not in DURABILITIES:
            raise DomainError(INVALID_OPTION_VALUE)
        if key == "messages_required_to_save" and U32.unpack(value)[0] == 0:
            raise DomainError(INVALID_OPTION_VALUE)
        if key == "segment_size" and U64.unpack(value)[0] == 0:
            raise DomainError(INVALID_OPTION_VALUE)


def fixed_fields(options: Options) -> tuple[int, int, int]:
    """(compression, message_expiry_us, max_topic_size) of a complete options map; raises
    INVALID_TOPIC_SIZE when an explicit max size is below the segment size."""
    compression, expiry, max_size = DEFAULT_FIXED
    entry = options.get("compression_algorithm")
    if entry is not None:
        compression = COMPRESSIONS[entry[1]]
    entry = options.get("message_expiry")
    if entry is not None:
        expiry = U64.unpack(entry[1])[0]
    entry = options.get("max_topic_size")
    if entry is not None:
        max_size = U64.unpack(entry[1])[0]
    segment = options.get("segment_size")
    if segment is not None and max_size not in (0, U64_MAX):
        if max_size < U64.unpack(segment[1])[0]:
            raise DomainError(INVALID_TOPIC_SIZE)
    return compression, expiry, max_size
