"""image-folder: PNG/JPEG/BMP images, one folder per class, read with Pillow.

Each image is converted to data.color (grayscale: "L", rgb: "RGB"), resized to data.image_size
[height, width] with bilinear filtering when set (else every image must have the first one's size),
scaled to [0, 1] and laid out as torch [C, H, W].
"""
from __future__ import annotations

from typing import Any

import numpy as np

from toolkit.data.source import Problems, Samples, data_root, list_files, samples_from
from toolkit.errors import EdgetkError
from toolkit.recipe import DataConfig

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def read_image(path: Any, color: str, size: tuple[int, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    """(float32 [C, H, W] in [0, 1], facts) ; ValueError naming the problem when the file is not a readable image."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:
        raise EdgetkError(f"reading images needs Pillow ({e})", fix="pip install pillow") from None
    try:
        with Image.open(path) as im:
            facts = {"width": im.width, "height": im.height, "mode": im.mode, "image_format": im.format}
            im = im.convert("L" if color == "grayscale" else "RGB")
            if size and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"not a readable image ({e})") from None
    return (a[None] if a.ndim == 2 else a.transpose(2, 0, 1)), facts


def source(cfg: DataConfig, problems: Problems, frontend: Any = None) -> Samples:
    """The images as float32 [N, C, H, W] in [0, 1]."""
    root = data_root(cfg, "images")
    entries = list_files(cfg, root, SUFFIXES, problems, "images")
    xs, keep, files = [], [], []
    for i, e in enumerate(entries):
        try:
            a, facts = read_image(e.path, cfg.color, cfg.image_size)
            if xs and a.shape != xs[0].shape:
                raise ValueError(f"size {list(a.shape[1:])} differs from the first image's {list(xs[0].shape[1:])}; "
                                 "set data.image_size = [height, width] to resize")
        except ValueError as err:
            problems.add(e.path, str(err), fix='fix or remove the image, or set data.on_error = "skip"')
            continue
        xs.append(a)
        keep.append(i)
        files.append({"file": e.rel, "label": e.label, "group": e.group, "split": e.split, **facts})
    if not xs:
        raise EdgetkError(f"no readable images under {root}", fix="see the problems listed above")
    c, h, w = xs[0].shape
    info = {"height": h, "width": w, "channels": c, "color": cfg.color, "pixel_scale": 1 / 255}
    return samples_from(entries, keep, np.stack(xs), "image", info, problems, files, f"image-folder {root.name}")
