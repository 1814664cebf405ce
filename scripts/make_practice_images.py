"""Draw the built-in practice images (static/practice/): a surprised cartoon face and a
wall socket that looks like it (a look-alike pair of the kind the study is about), and
four pictures that look like neither. Drawn here, so no licence question arises and no
experiment can contain them. Run once; the PNGs are committed."""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

W, H = 200, 245
OUT = Path(__file__).resolve().parents[1] / "static" / "practice"


def canvas(bg):
    im = Image.new("RGB", (W, H), bg)
    return im, ImageDraw.Draw(im)


def face():
    im, d = canvas((225, 235, 245))
    d.ellipse([20, 42, 180, 202], fill=(250, 205, 60), outline=(150, 110, 20), width=4)
    d.ellipse([62, 85, 82, 125], fill=(30, 30, 30))
    d.ellipse([118, 85, 138, 125], fill=(30, 30, 30))
    d.ellipse([84, 145, 116, 180], fill=(120, 30, 30))
    return im


def socket():
    im, d = canvas((190, 180, 165))
    d.rounded_rectangle([25, 47, 175, 197], radius=18, fill=(245, 243, 236),
                        outline=(160, 155, 145), width=3)
    d.rounded_rectangle([64, 82, 78, 126], radius=5, fill=(40, 40, 40))
    d.rounded_rectangle([122, 82, 136, 126], radius=5, fill=(40, 40, 40))
    d.chord([86, 145, 114, 178], 180, 360, fill=(40, 40, 40))
    d.rectangle([86, 161, 114, 178], fill=(40, 40, 40))
    return im


def house():
    im, d = canvas((200, 230, 255))
    d.rectangle([0, 200, W, H], fill=(90, 160, 70))
    d.rectangle([45, 110, 155, 205], fill=(200, 80, 60))
    d.polygon([(30, 112), (100, 50), (170, 112)], fill=(110, 60, 40))
    d.rectangle([88, 150, 112, 205], fill=(90, 50, 30))
    return im


def tree():
    im, d = canvas((235, 245, 225))
    d.rectangle([88, 150, 112, 225], fill=(120, 80, 40))
    d.polygon([(100, 30), (40, 160), (160, 160)], fill=(40, 130, 60))
    return im


def boat():
    im, d = canvas((170, 210, 240))
    d.rectangle([0, 185, W, H], fill=(40, 90, 160))
    d.polygon([(40, 170), (160, 170), (140, 195), (60, 195)], fill=(130, 70, 30))
    d.polygon([(100, 40), (100, 165), (165, 165)], fill=(250, 250, 250))
    d.line([(100, 35), (100, 170)], fill=(60, 40, 20), width=4)
    return im


def bicycle():
    im, d = canvas((245, 240, 230))
    for cx in (55, 145):
        d.ellipse([cx - 38, 130, cx + 38, 206], outline=(40, 40, 40), width=6)
    d.line([(55, 168), (95, 120), (145, 168), (55, 168)], fill=(200, 40, 40), width=5)
    d.line([(95, 120), (88, 100), (108, 100)], fill=(40, 40, 40), width=4)
    return im


# Neutral names, so that the file name does not tell the look-alike apart.
IMAGES = {"p1.png": face, "p2.png": socket, "p3.png": house, "p4.png": tree,
          "p5.png": boat, "p6.png": bicycle}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, draw in IMAGES.items():
        draw().save(OUT / name, optimize=True)
    print(f"wrote {len(IMAGES)} images to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
