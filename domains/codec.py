"""Iggy's binary payload primitives (iggy-protocol.md section 7) shared by the domain codecs.

Owns: the bounds-checked `Reader` over a request body, the name8 / Identifier / options-TLV
layouts in both directions, and the fixed-width packers. Every decoding failure is a
`DomainError` (INVALID_FORMAT unless a more precise code applies), whatever the bytes. Result
bodies, which only the client library decodes, fail with `MalformedResult` instead
(`result_decoder`), and option values convert to and from Python values (`option_value`,
`option_bytes`). Must never import net/: the domains own the encodings of their own payloads.
"""

from __future__ import annotations

import functools
import struct

from domains.errors import (
    CATALOGUE,
    INVALID_FORMAT,
    INVALID_IDENTIFIER,
    INVALID_OPTION_VALUE,
    OPTIONS_LIMITS_EXCEEDED,
    UNSUPPORTED_OPTION_KEY,
    DomainError,
)

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
U64_MAX = (1 << 64) - 1

ID_NUMERIC = 1
ID_STRING = 2
NAME_MAX = 255

# Options TLV bounds (iggy-protocol.md section 7).
OPTION_PAIRS_MAX = 1024
OPTIONS_BYTES_MAX = 100_000
OPTION_KEY_KIND_STRING = 2
KIND_STRING, KIND_BOOL = 2, 3
# value kind -> exact width in bytes (None: 1..255 bytes of any content).
VALUE_WIDTH: dict[int, int | None] = {
    1: None, 2: None, 3: 1, 4: 1, 5: 2, 6: 4, 7: 8, 8: 16,
    9: 1, 10: 2, 11: 4, 12: 8, 13: 16, 14: 4, 15: 8,
}

Identifier = int | str


class Reader:
    """Sequential little-endian reads over one body; overruns raise INVALID_FORMAT."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > len(self.buf):
            raise DomainError(INVALID_FORMAT)
        self.pos = end
        return self.buf[pos:end]

    def u8(self) -> int:
        pos = self.pos
        if pos >= len(self.buf):
            raise DomainError(INVALID_FORMAT)
        self.pos = pos + 1
        return self.buf[pos]

    def u32(self) -> int:
        pos = self.pos
        if pos + 4 > len(self.buf):
            raise DomainError(INVALID_FORMAT)
        self.pos = pos + 4
        return U32.unpack_from(self.buf, pos)[0]

    def u64(self) -> int:
        pos = self.pos
        if pos + 8 > len(self.buf):
            raise DomainError(INVALID_FORMAT)
        self.pos = pos + 8
        return U64.unpack_from(self.buf, pos)[0]

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise DomainError(INVALID_FORMAT)
        return value == 1

    def name8(self, low: int, high: int, error: int) -> str:
        """A `[len u8][UTF-8]` name whose length must be in low..high, else `error`."""
        raw = self.take(self.u8())
        if not low <= len(raw) <= high:
            raise DomainError(error)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DomainError(error) from None

    def bytes8(self, low: int, high: int, error: int) -> bytes:
        raw = self.take(self.u8())
        if not low <= len(raw) <= high:
            raise DomainError(error)
        return raw

    def identifier(self) -> Identifier:
        # Inlined reads: identifiers are on every operation's hot path.
        buf = self.buf
        pos = self.pos
        if pos + 2 > len(buf):
            raise DomainError(INVALID_FORMAT)
        kind = buf[pos]
        size = buf[pos + 1]
        end = pos + 2 + size
        if end > len(buf):
            raise DomainError(INVALID_FORMAT)
        self.pos = end
        if kind == ID_NUMERIC:
            if size != 4:
                raise DomainError(INVALID_IDENTIFIER)
            return U32.unpack_from(buf, pos + 2)[0]
        if kind == ID_STRING and size >= 1:
            try:
                return buf[pos + 2:end].decode("utf-8")
            except UnicodeDecodeError:
                raise DomainError(INVALID_IDENTIFIER) from None
        raise DomainError(INVALID_IDENTIFIER)

    def rest(self) -> bytes:
        data = self.buf[self.pos:]
        self.pos = len(self.buf)
        return data

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise DomainError(INVALID_FORMAT)


def name8(name: str) -> bytes:
    raw = name.encode("utf-8")
    return bytes((len(raw),)) + raw


def bytes8(raw: bytes) -> bytes:
    return bytes((len(raw),)) + raw


def identifier(ident: Identifier) -> bytes:
    if isinstance(ident, int):
        return b"\x01\x04" + U32.pack(ident)
    raw = ident.encode("utf-8")
    return bytes((ID_STRING, len(raw))) + raw


# ---- options TLV -------------------------------------------------------------------------
# An options map is held as a dict key(str) -> (kind, value bytes); its canonical encoding is
# the pairs sorted bytewise by key, which is also the order the SDK sends.

Options = dict[str, tuple[int, bytes]]


def decode_options(raw: bytes) -> Options:
    """Decode a request's options block (pairs to the end of `raw`), checking every bound."""
    if len(raw) > OPTIONS_BYTES_MAX:
        raise DomainError(OPTIONS_LIMITS_EXCEEDED)
    reader = Reader(raw)
    options: Options = {}
    while reader.pos < len(raw):
        if len(options) >= OPTION_PAIRS_MAX:
            raise DomainError(OPTIONS_LIMITS_EXCEEDED)
        key_kind = reader.u8()
        key_raw = reader.take(reader.u32())
        value_kind = reader.u8()
        value = reader.take(reader.u32())
        if key_kind != OPTION_KEY_KIND_STRING:
            raise DomainError(UNSUPPORTED_OPTION_KEY)
        if not 1 <= len(key_raw) <= NAME_MAX or not 1 <= len(value) <= NAME_MAX:
            raise DomainError(OPTIONS_LIMITS_EXCEEDED)
        try:
            key = key_raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DomainError(UNSUPPORTED_OPTION_KEY) from None
        if key in options:
            raise DomainError(OPTIONS_LIMITS_EXCEEDED)
        width = VALUE_WIDTH.get(value_kind, -1)
        if width == -1 or (width is not None and len(value) != width):
            raise DomainError(INVALID_OPTION_VALUE)
        if value_kind == KIND_BOOL and value[0] > 1:
            raise DomainError(INVALID_OPTION_VALUE)
        if value_kind == KIND_STRING:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise DomainError(INVALID_OPTION_VALUE) from None
        options[key] = (value_kind, value)
    return options


def encode_options(options: Options) -> bytes:
    """The canonical pairs (sorted bytewise by key), without a length prefix."""
    parts = []
    for key in sorted(options, key=str.encode):
        kind, value = options[key]
        key_raw = key.encode("utf-8")
        parts.append(b"\x02" + U32.pack(len(key_raw)) + key_raw + bytes((kind,))
                     + U32.pack(len(value)) + value)
    return b"".join(parts)


def merge_options(base: Options, patch: Options) -> Options:
    merged = dict(base)
    merged.update(patch)
    if len(merged) > OPTION_PAIRS_MAX or len(encode_options(merged)) > OPTIONS_BYTES_MAX:
        raise DomainError(OPTIONS_LIMITS_EXCEEDED)
    return merged


def string_options_only(options: Options) -> None:
    """Free-form options (streams, users, topic extras) must be String-valued."""
    for kind, _ in options.values():
        if kind != KIND_STRING:
            raise DomainError(UNSUPPORTED_OPTION_KEY)


# ---- result decoding (client side) -------------------------------------------------------
# The client library decodes the result bodies the domains encode. A result that does not
# follow its layout is not an operation's answer but a broken or foreign server, so it gets its
# own error type, whatever the bytes: callers catch one exception, never struct or UTF-8 errors.


class MalformedResult(ValueError):
    """A result body that does not follow its layout (raised by every result decoder)."""


def read_one(payload: bytes, read):
    """Decode exactly one item with read(reader); trailing bytes are malformed."""
    reader = Reader(payload)
    item = read(reader)
    reader.end()
    return item


def read_until_end(payload: bytes, read) -> list:
    """Items read back to back with read(reader) until the body ends (lists with no count)."""
    reader = Reader(payload)
    items = []
    while reader.pos < len(payload):
        items.append(read(reader))
    return items


def result_decoder(decode):
    """Wrap a decoder of a whole result body: every failure becomes `MalformedResult` naming the
    layout. The wrapped function takes `bytes` and must consume the body exactly."""

    @functools.wraps(decode)
    def wrapper(payload: bytes):
        try:
            return decode(bytes(payload))
        except DomainError as error:
            raise MalformedResult(f"{decode.__name__}: {_error_name(error.code)}") from None
        except (struct.error, UnicodeDecodeError, ValueError) as error:
            raise MalformedResult(f"{decode.__name__}: {error}") from None

    return wrapper


def _error_name(code: int) -> str:
    return CATALOGUE.get(code, (f"error {code}",))[0]


def options_block(reader: Reader) -> Options:
    """A result's options block: `[len u32]` then pairs, with the request's bounds."""
    return decode_options(reader.take(reader.u32()))


# Fixed-width option kinds -> struct format (kinds 8 and 13, 128-bit, have none).
_VALUE_FORMATS = {3: "<?", 4: "<b", 5: "<h", 6: "<i", 7: "<q", 9: "<B", 10: "<H", 11: "<I",
                  12: "<Q", 14: "<f", 15: "<d"}
KIND_RAW, KIND_INT128, KIND_UINT128 = 1, 8, 13

OptionValue = str | bool | int | float | bytes


def option_value(kind: int, raw: bytes) -> OptionValue:
    """The Python value of an option (Raw stays bytes); `raw` has the kind's width."""
    if kind == KIND_STRING:
        return raw.decode("utf-8")
    if kind in (KIND_INT128, KIND_UINT128):
        return int.from_bytes(raw, "little", signed=kind == KIND_INT128)
    fmt = _VALUE_FORMATS.get(kind)
    if fmt is None:
        return raw
    return struct.unpack(fmt, raw)[0]


def option_bytes(kind: int, value: OptionValue) -> bytes:
    """An option value in its kind's encoding; ValueError when it does not fit the kind."""
    if kind == KIND_STRING:
        return value.encode("utf-8")
    if kind == KIND_RAW:
        return bytes(value)
    if kind in (KIND_INT128, KIND_UINT128):
        try:
            return int(value).to_bytes(16, "little", signed=kind == KIND_INT128)
        except OverflowError as error:
            raise ValueError(f"option value {value!r} does not fit kind {kind}: {error}") from None
    fmt = _VALUE_FORMATS.get(kind)
    if fmt is None:
        raise ValueError(f"unknown option value kind {kind}")
    try:
        return struct.pack(fmt, value)
    except struct.error as error:
        raise ValueError(f"option value {value!r} does not fit kind {kind}: {error}") from None
