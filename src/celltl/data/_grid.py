"""Private: draw duplicate groups as a PNG grid with Pillow."""

from __future__ import annotations

import numpy as np

_PER_ROW = 8
_CAPTION = 14


def draw_groups(images, report, path, *, max_groups: int, thumb: int):
    from PIL import Image, ImageDraw

    groups = report.groups[:max_groups]
    rows = max(len(groups), 1)
    cell_h = thumb + _CAPTION
    cols = max([min(g.indices.size, _PER_ROW) for g in groups] + [4])
    canvas = Image.new("RGB", (cols * thumb + thumb // 2, rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    if not groups:
        draw.text((4, 4), "no duplicates found", fill="black")
    for r, g in enumerate(groups):
        colour = (200, 0, 0) if g.cross_class else (0, 0, 160)
        box = [0, r * cell_h, thumb // 2 - 4, (r + 1) * cell_h - 2]
        draw.rectangle(box, fill=colour)  # red: cross-class, blue: one class
        for c, (i, y) in enumerate(zip(g.indices[:_PER_ROW], g.labels)):
            tile = Image.fromarray(np.ascontiguousarray(images[i]))
            tile = tile.resize((thumb, thumb), Image.Resampling.BILINEAR)
            x0, y0 = thumb // 2 + c * thumb, r * cell_h
            canvas.paste(tile, (x0, y0))
            caption = f"{i}:{report.class_names[y]}"[: max(thumb // 6, 4)]
            draw.text((x0 + 2, y0 + thumb), caption, fill=colour)
    canvas.save(path, format="PNG")
    return path
