"""--plot writes a valid PNG (signature, chunk CRCs, image size, decodable pixels)."""

from __future__ import annotations

import struct
import zlib

from tools.loadgen import plot


def chunks(png: bytes):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at = 8
    while at < len(png):
        (size,) = struct.unpack_from(">I", png, at)
        kind, data = png[at + 4:at + 8], png[at + 8:at + 8 + size]
        (crc,) = struct.unpack_from(">I", png, at + 8 + size)
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        yield kind, data
        at += 12 + size


def test_png_is_well_formed_and_has_ink_of_both_series():
    found = dict(chunks(plot.render([100.0, 250.0, 180.0], [3.0, 9.5, 4.0])))
    assert list(found) == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, color = struct.unpack_from(">IIBB", found[b"IHDR"])
    assert (width, height, depth, color) == (plot.WIDTH, plot.HEIGHT, 8, 2)
    raw = zlib.decompress(found[b"IDAT"])
    assert len(raw) == height * (1 + 3 * width)
    assert bytes(plot.BLUE) in raw and bytes(plot.RED) in raw


def test_empty_and_single_second_series_still_render():
    assert dict(chunks(plot.render([], [])))
    assert dict(chunks(plot.render([5.0], [1.0])))
