"""Image reading/writing: formats, bit depths, channel rules, clear errors, atomic writes."""

from __future__ import annotations

import re
import sys

import cv2
import numpy as np
import pytest
import torch

from ranksrgan.io import ImageReadError, read_image, write_image


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_lossless_round_trip_8bit(tmp_path, demo_rgb, ext):
    x = torch.from_numpy(demo_rgb).permute(2, 0, 1).float() / 255
    write_image(tmp_path / f"a{ext}", x)
    y = read_image(tmp_path / f"a{ext}")
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.equal(y, x)


def test_jpeg_is_close(tmp_path, demo_rgb):
    x = torch.from_numpy(demo_rgb).permute(2, 0, 1).float() / 255
    write_image(tmp_path / "a.jpg", x)
    assert (read_image(tmp_path / "a.jpg") - x).abs().mean() < 0.02


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_keeps_depth(tmp_path, ext):
    arr = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 997 % 65536).astype(np.uint16)
    cv2.imwrite(str(tmp_path / f"a{ext}"), arr[:, :, ::-1])  # cv2 writes BGR
    y = read_image(tmp_path / f"a{ext}")
    assert torch.allclose(y, torch.from_numpy(arr.astype(np.float32) / 65535).permute(2, 0, 1))
    write_image(tmp_path / f"b{ext}", y, bit_depth=16)
    assert torch.equal(read_image(tmp_path / f"b{ext}"), y)


def test_gray_and_alpha_rules(tmp_path):
    gray = (np.arange(20).reshape(4, 5) * 12).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, 4, 5) and torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0  # fully transparent
    cv2.imwrite(str(tmp_path / "a.png"), rgba[:, :, [2, 1, 0, 3]])
    a = read_image(tmp_path / "a.png")
    assert a.shape == (3, 4, 5)
    assert torch.allclose(a[:, 0, 0], torch.tensor([10, 20, 30]) / 255.0)  # alpha dropped, colour kept


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=rf"^{re.escape(str(tmp_path))}: is a folder, not an image file$"):
        read_image(tmp_path)


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_png(tmp_path, demo_rgb, cut, capfd):
    path = tmp_path / "t.png"
    write_image(path, torch.from_numpy(demo_rgb).permute(2, 0, 1).float() / 255)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    capfd.readouterr()
    with pytest.raises(ImageReadError, match="t.png.*cannot decode") as info:
        read_image(path)
    assert "\n" not in str(info.value)
    # what libpng / OpenCV print on file descriptor 2 is kept out of the terminal
    assert capfd.readouterr().err == ""


def test_codec_complaint_becomes_part_of_the_error(tmp_path, demo_rgb, capfd):
    path = tmp_path / "crc.png"
    write_image(path, torch.from_numpy(demo_rgb).permute(2, 0, 1).float() / 255)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside IDAT: its CRC no longer matches
    path.write_bytes(bytes(data))
    capfd.readouterr()
    with pytest.raises(ImageReadError, match=r"crc.png: cannot decode image \(corrupt, truncated or unsupported data: [^)]+\)$"):
        read_image(path)
    assert capfd.readouterr().err == ""
    # a good file afterwards: stderr works as before
    write_image(path, torch.zeros(3, 4, 4))
    assert read_image(path).shape == (3, 4, 4)
    print("still here", file=sys.stderr)
    assert capfd.readouterr().err == "still here\n"


def test_corrupt_and_empty(tmp_path):
    (tmp_path / "c.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="c.jpg"):
        read_image(tmp_path / "c.jpg")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="e.png: empty"):
        read_image(tmp_path / "e.png")
    (tmp_path / "x.gif").write_bytes(b"GIF89a")
    with pytest.raises(ImageReadError, match="unsupported extension"):
        read_image(tmp_path / "x.gif")


def test_too_small_for_patch(tmp_path, demo_rgb):
    write_image(tmp_path / "s.png", torch.from_numpy(demo_rgb).permute(2, 0, 1).float() / 255)
    with pytest.raises(ImageReadError, match=r"s.png: image is 96x128, smaller than the required 296x296"):
        read_image(tmp_path / "s.png", min_size=296)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    write_image(path, torch.zeros(3, 4, 4))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("ranksrgan.io.os.replace", boom)
    with pytest.raises(OSError):
        write_image(path, torch.ones(3, 4, 4))
    assert path.read_bytes() == before  # old file intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "n.png", torch.full((3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="cannot hold 16-bit"):
        write_image(tmp_path / "n.jpg", torch.zeros(3, 2, 2), bit_depth=16)
