"""`--plot FILE.png`: throughput and p99 latency per second of the run, as a small PNG.

Owns a tiny raster (RGB canvas, lines, a 3x5 pixel font for the axis figures) and the PNG
encoding (zlib + struct, the format's three chunks), so the load generator needs no plotting
dependency. Two panels share the time axis: ops/s on top, p99 in ms below; each is scaled to
its own maximum, printed at its top left, and the run's length is printed under the time axis.
Points are whole seconds of run time (warm-up included); the last one is usually a partial
second (the drain), so its ops/s point drops.
Must never read results from anywhere but its arguments.
"""

from __future__ import annotations

import struct
import zlib

WIDTH, HEIGHT = 800, 440
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, PANEL_GAP, MARGIN_BOTTOM = 16, 16, 28, 40, 28
SCALE = 2  # font pixels per glyph pixel
WHITE, GREY, BLACK = (255, 255, 255), (200, 200, 200), (40, 40, 40)
BLUE, RED = (31, 119, 180), (214, 39, 40)

# 3x5 glyphs, one string of 3 characters per row ("#" = ink).
_FONT = {
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"), "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"), "7": ("###", "..#", "..#", "..#", "..#"),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "###"),
    ".": ("...", "...", "...", "...", ".#."), "/": ("..#", "..#", ".#.", "#..", "#.."),
    " ": ("...", "...", "...", "...", "..."), "o": ("...", "###", "#.#", "#.#", "###"),
    "p": ("...", "###", "#.#", "###", "#.."), "s": ("...", "###", "##.", "..#", "###"),
    "m": ("...", "###", "###", "#.#", "#.#"), "x": ("...", "#.#", ".#.", "#.#", "#.#"),
    "t": (".#.", "###", ".#.", ".#.", ".##"), "a": ("...", "##.", "..#", "###", "###"),
    "e": ("...", "###", "###", "#..", "###"),
}


class Canvas:
    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * (width * height))

    def dot(self, x: int, y: int, color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            at = 3 * (y * self.width + x)
            self.pixels[at:at + 3] = bytes(color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color, thick: int = 1) -> None:
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            x = x0 + (x1 - x0) * i // steps
            y = y0 + (y1 - y0) * i // steps
            for d in range(thick):
                self.dot(x, y + d, color)

    def text(self, x: int, y: int, text: str, color) -> None:
        for char in text:
            for row, bits in enumerate(_FONT.get(char, _FONT[" "])):
                for col, bit in enumerate(bits):
                    if bit == "#":
                        for dy in range(SCALE):
                            for dx in range(SCALE):
                                self.dot(x + col * SCALE + dx, y + row * SCALE + dy, color)
            x += 4 * SCALE

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[3 * y * self.width:3 * (y + 1) * self.width])
                       for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _figure(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def render(ops_per_s: list[float], p99_ms: list[float]) -> bytes:
    """The PNG of two per-second series of the same length (second 0 first)."""
    canvas = Canvas(WIDTH, HEIGHT)
    panel_h = (HEIGHT - MARGIN_TOP - PANEL_GAP - MARGIN_BOTTOM) // 2
    left, right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
    seconds = max(1, len(ops_per_s) - 1)
    for n, (values, unit, color) in enumerate(((ops_per_s, "ops/s", BLUE),
                                               (p99_ms, "p99 ms", RED))):
        top = MARGIN_TOP + n * (panel_h + PANEL_GAP)
        bottom = top + panel_h
        peak = max(values, default=0.0) or 1.0
        for fraction in (0.0, 0.5, 1.0):
            y = bottom - round(fraction * panel_h)
            canvas.line(left, y, right, y, GREY)
        canvas.line(left, top, left, bottom, BLACK)
        canvas.text(left + 4, top - 6 * SCALE - 4, f"{unit} max {_figure(peak)}", color)
        points = [(left + (right - left) * i // seconds, bottom - round(v / peak * panel_h))
                  for i, v in enumerate(values)]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            canvas.line(x0, y0, x1, y1, color, thick=2)
        if len(points) == 1:
            canvas.line(left, points[0][1], right, points[0][1], color, thick=2)
    canvas.text(right - 12 * 4 * SCALE, HEIGHT - MARGIN_BOTTOM + 8, f"{seconds} s", BLACK)
    return canvas.png()


def write(path: str, ops_per_s: list[float], p99_ms: list[float]) -> None:
    with open(path, "wb") as out:
        out.write(render(ops_per_s, p99_ms))
