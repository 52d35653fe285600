"""Writes a folder of JPEGs for bench_loader: <out>/class<k>/img<i>.jpg, about
500x375 (sizes vary a little, like a real photo set), saved with PIL quality 90.
Deterministic; skips existing files."""
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1] if len(sys.argv) > 1 else "benchmarks/data/jpegs"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 400
for i in range(count):
    rng = np.random.RandomState(i)  # per image, so skipping existing files changes nothing
    path = os.path.join(out, f"class{i % 4}", f"img{i:04d}.jpg")
    w, h = (500, 375) if i % 3 else (375, 500)
    w += int(rng.randint(-20, 21))
    h += int(rng.randint(-20, 21))
    if os.path.exists(path):
        continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f = rng.uniform(2, 12, 6)
    img = np.stack([127 + 110 * np.sin(x / w * f[0] + y / h * f[1]),
                    127 + 110 * np.cos(x / w * f[2] - y / h * f[3]),
                    127 + 110 * np.sin((x + y) / (w + h) * f[4] + f[5])], -1)
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
