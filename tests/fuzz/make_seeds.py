"""Writes the seed inputs for the fuzz targets into SEEDS/<target>/ (run with
Debian's /usr/bin/python3, which has torch, numpy and PIL):

  zip, pth     small torch.save'd checkpoints (zip, protocol 2 and 4, legacy,
               nested, shared storages, a non-contiguous view), safetensors, npy
  pickle       the data.pkl of each zip checkpoint, and the legacy pickles
  safetensors  several dtypes, 0-d and empty tensors, __metadata__
  npy          every dtype graft reads, 0-d, empty, fortran order, version 2.0
  idx          each IDX element type, 1-3 dims, and gzip-compressed copies
  image        PNG (RGB, RGBA, gray, palette, 16-bit, optimised), JPEG (4:2:0,
               4:4:4, gray, progressive, CMYK), BMP (24, 32, 8-bit palette), GIF,
               TGA, PPM/PGM

Fuzzing grows and minimises these into tests/fuzz/corpus/<target>/ (docs/FUZZING.md).
"""
import gzip
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np
import torch
from PIL import Image

OUT = sys.argv[1] if len(sys.argv) > 1 else "seeds"


def put(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def torch_bytes(obj, **kw):
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def checkpoints():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3), torch.nn.Linear(3, 2))
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    yield "state_dict.pth", torch_bytes(lin.state_dict())
    yield "proto4.pth", torch_bytes(lin.state_dict(), pickle_protocol=4)
    yield "legacy.pth", torch_bytes(lin.state_dict(), _use_new_zipfile_serialization=False)
    yield "nested.pth", torch_bytes({"state_dict": lin.state_dict(), "epoch": 3, "lr": 0.1,
                                     "names": ["a", "b"], "flag": True, "none": None})
    yield "views.pth", torch_bytes({"t": base.t(), "row": base[1], "same": base, "col": base[:, 2]})
    yield "dtypes.pth", torch_bytes({str(d): torch.ones(2, dtype=d) for d in
                                     (torch.float16, torch.bfloat16, torch.float64, torch.int8,
                                      torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool)})
    yield "scalar_empty.pth", torch_bytes({"s": torch.tensor(1.5), "e": torch.zeros(0, 3)})


def safetensors_bytes(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    names = {np.float32: "F32", np.float64: "F64", np.float16: "F16", np.int64: "I64",
             np.int32: "I32", np.int16: "I16", np.int8: "I8", np.uint8: "U8", np.bool_: "BOOL"}
    for k, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": names[a.dtype.type], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def npy_bytes(a, **kw):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, **kw)
    return buf.getvalue()


def idx_bytes(a, code):
    a = np.asarray(a)
    head = bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", s) for s in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def image_bytes(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def main():
    for name, data in checkpoints():
        put("pth", name, data)
        put("zip", name, data)
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                pkl = [n for n in z.namelist() if n.endswith("data.pkl")][0]
                put("pickle", name.replace(".pth", ".pkl"), z.read(pkl))
        else:
            put("pickle", name.replace(".pth", "_legacy.pkl"), data)
    rng = np.random.default_rng(0)
    st = {
        "mixed.safetensors": safetensors_bytes(
            {"w": rng.standard_normal((2, 3)).astype(np.float32), "i": np.arange(4, dtype=np.int64),
             "h": np.ones(3, np.float16), "b": np.array([True, False])}, {"format": "pt"}),
        "scalar.safetensors": safetensors_bytes({"s": np.array(2.0, np.float64),
                                                 "e": np.zeros((0, 2), np.int32)}),
        "bytes.safetensors": safetensors_bytes({"u": np.arange(5, dtype=np.uint8),
                                                "i8": np.arange(3, dtype=np.int8),
                                                "i16": np.arange(2, dtype=np.int16)}),
    }
    for name, data in st.items():
        put("safetensors", name, data)
        put("pth", name, data)
    npys = {
        "f32.npy": npy_bytes(rng.standard_normal((2, 3)).astype(np.float32)),
        "f64_fortran.npy": npy_bytes(np.asfortranarray(rng.standard_normal((3, 2)))),
        "i64.npy": npy_bytes(np.arange(6, dtype=np.int64).reshape(2, 3)),
        "u8.npy": npy_bytes(np.arange(4, dtype=np.uint8)),
        "f16_be.npy": npy_bytes(np.ones(3, dtype=">f2")),
        "bool.npy": npy_bytes(np.array([True, False])),
        "scalar.npy": npy_bytes(np.array(3.5, np.float32)),
        "empty.npy": npy_bytes(np.zeros((0, 4), np.int32)),
        "v2.npy": npy_bytes(np.arange(3, dtype=np.int16), version=(2, 0)),
    }
    for name, data in npys.items():
        put("npy", name, data)
        put("pth", name, data)
    idxs = {
        "u8_images.idx": idx_bytes(rng.integers(0, 255, (3, 4, 4), dtype=np.uint8), 0x08),
        "u8_labels.idx": idx_bytes(np.array([1, 0, 9], np.uint8), 0x08),
        "i8.idx": idx_bytes(np.array([-1, 2], np.int8), 0x09),
        "i16.idx": idx_bytes(np.array([[1, -2], [3, 4]], np.int16), 0x0B),
        "i32.idx": idx_bytes(np.array([7, -8, 9], np.int32), 0x0C),
        "f32.idx": idx_bytes(rng.standard_normal((2, 2)).astype(np.float32), 0x0D),
        "f64.idx": idx_bytes(np.array([0.5], np.float64), 0x0E),
    }
    for name, data in idxs.items():
        put("idx", name, data)
    put("idx", "u8_images.idx.gz", gzip.compress(idxs["u8_images.idx"], mtime=0))
    put("idx", "f32.idx.gz", gzip.compress(idxs["f32.idx"], mtime=0))

    rgb = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8), "RGB")
    images = {
        "rgb.png": image_bytes(rgb, "PNG"),
        "rgba.png": image_bytes(rgb.convert("RGBA"), "PNG"),
        "gray.png": image_bytes(rgb.convert("L"), "PNG"),
        "gray_alpha.png": image_bytes(rgb.convert("LA"), "PNG"),
        "palette.png": image_bytes(rgb.convert("P"), "PNG"),
        "gray16.png": image_bytes(rgb.convert("I").point(lambda v: v * 256), "PNG"),
        "optimized.png": image_bytes(rgb, "PNG", optimize=True),
        "q90_420.jpg": image_bytes(rgb, "JPEG", quality=90, subsampling=2),
        "q75_444.jpg": image_bytes(rgb, "JPEG", quality=75, subsampling=0),
        "gray.jpg": image_bytes(rgb.convert("L"), "JPEG"),
        "progressive.jpg": image_bytes(rgb, "JPEG", progressive=True),
        "cmyk.jpg": image_bytes(rgb.convert("CMYK"), "JPEG"),
        "rgb24.bmp": image_bytes(rgb, "BMP"),
        "palette8.bmp": image_bytes(rgb.convert("P"), "BMP"),
        "rgba32.bmp": image_bytes(rgb.convert("RGBA"), "BMP"),
        "anim.gif": image_bytes(rgb.convert("P"), "GIF"),
        "rgb.tga": image_bytes(rgb, "TGA"),
        "rle.tga": image_bytes(rgb, "TGA", compression="tga_rle"),
        "rgb.ppm": image_bytes(rgb, "PPM"),
        "gray.pgm": image_bytes(rgb.convert("L"), "PPM"),
    }
    for name, data in images.items():
        put("image", name, data)


if __name__ == "__main__":
    main()
