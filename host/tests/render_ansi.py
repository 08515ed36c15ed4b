#!/usr/bin/env python3
"""Renders a `tmux capture-pane -e -p` capture (text with ANSI SGR colours) to a PNG.

usage: render_ansi.py CAPTURE.ansi OUT.png
Needs Pillow and DejaVu Sans Mono (fonts-dejavu-core). Block elements are drawn as
rectangles so bars and sparklines line up exactly.
"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE = 16
FG, BG = (208, 208, 208), (24, 24, 28)
BASE16 = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]


def xterm256(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    g = 8 + (n - 232) * 10
    return (g, g, g)


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def parse(text):
    """Yields rows of (char, fg, bg, bold, dim, reverse)."""
    rows = []
    state = dict(fg=None, bg=None, bold=False, dim=False, rev=False)
    for line in text.split("\n"):
        row, pos = [], 0
        for m in list(SGR.finditer(line)) + [None]:
            end = m.start() if m else len(line)
            for ch in line[pos:end]:
                row.append((ch, dict(state)))
            if not m:
                break
            pos = m.end()
            codes = [int(c) if c else 0 for c in m.group(1).split(";")] or [0]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    state.update(fg=None, bg=None, bold=False, dim=False, rev=False)
                elif c == 1:
                    state["bold"] = True
                elif c == 2:
                    state["dim"] = True
                elif c == 22:
                    state.update(bold=False, dim=False)
                elif c == 7:
                    state["rev"] = True
                elif c == 27:
                    state["rev"] = False
                elif 30 <= c <= 37:
                    state["fg"] = BASE16[c - 30]
                elif 90 <= c <= 97:
                    state["fg"] = BASE16[c - 90 + 8]
                elif 40 <= c <= 47:
                    state["bg"] = BASE16[c - 40]
                elif 100 <= c <= 107:
                    state["bg"] = BASE16[c - 100 + 8]
                elif c == 39:
                    state["fg"] = None
                elif c == 49:
                    state["bg"] = None
                elif c in (38, 48) and i + 1 < len(codes):
                    key = "fg" if c == 38 else "bg"
                    if codes[i + 1] == 5 and i + 2 < len(codes):
                        state[key] = xterm256(codes[i + 2])
                        i += 2
                    elif codes[i + 1] == 2 and i + 4 < len(codes):
                        state[key] = tuple(codes[i + 2:i + 5])
                        i += 4
                i += 1
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    return rows


def blend(a, b, t):
    return tuple(int(x * (1 - t) + y * t) for x, y in zip(a, b))


def render(text, out):
    font = ImageFont.truetype(FONT, SIZE)
    bold = ImageFont.truetype(FONT_BOLD, SIZE)
    cw = int(round(font.getlength("M")))
    ch = int(SIZE * 1.25)
    rows = parse(text)
    cols = max(len(r) for r in rows)
    pad = 12
    img = Image.new("RGB", (cols * cw + 2 * pad, len(rows) * ch + 2 * pad), BG)
    d = ImageDraw.Draw(img)
    for y, row in enumerate(rows):
        for x, (c, s) in enumerate(row):
            fg, bg = s["fg"] or FG, s["bg"] or BG
            if s["rev"]:
                fg, bg = bg, fg
            if s["dim"]:
                fg = blend(fg, bg, 0.45)
            x0, y0 = pad + x * cw, pad + y * ch
            d.rectangle([x0, y0, x0 + cw - 1, y0 + ch - 1], fill=bg)
            o = ord(c)
            if 0x2581 <= o <= 0x2588:  # lower eighths
                h = round(ch * (o - 0x2580) / 8)
                d.rectangle([x0, y0 + ch - h, x0 + cw - 1, y0 + ch - 1], fill=fg)
            elif 0x2589 <= o <= 0x258F:  # left eighths
                w = round(cw * (0x2590 - o) / 8)
                d.rectangle([x0, y0, x0 + w - 1, y0 + ch - 1], fill=fg)
            elif o in (0x2591, 0x2592, 0x2593):  # shades
                t = {0x2591: 0.25, 0x2592: 0.5, 0x2593: 0.75}[o]
                d.rectangle([x0, y0, x0 + cw - 1, y0 + ch - 1], fill=blend(bg, fg, t))
            elif c != " ":
                d.text((x0, y0 + 1), c, font=bold if s["bold"] else font, fill=fg)
    img.save(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        render(f.read(), sys.argv[2])
