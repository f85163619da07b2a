"""Tiled inference (``ranksrgan.tiling``) and the ``ranksrgan-upscale`` / ``ranksrgan-export`` CLIs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from ranksrgan.cli import export as export_cli
from ranksrgan.cli import upscale as upscale_cli
from ranksrgan.export import save_state_dict
from ranksrgan.io import decode_image, to_tensor
from ranksrgan.nets import RRDBNet, SRResNet
from ranksrgan.tiling import infer_scale, receptive_field_radius, tile_windows, upscale


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine the thread
    barriers of 2+ threads make each small op orders of magnitude slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_srresnet(scale: int = 4, blocks: int = 1) -> SRResNet:
    torch.manual_seed(0)
    net = SRResNet(num_features=8, num_blocks=blocks, scale=scale).eval()
    with torch.no_grad():  # stronger weights than the 0.1-scaled init, so tiles really interact
        for p in net.parameters():
            p.mul_(3.0)
    return net


def _write_png(path, arr: np.ndarray) -> None:
    """Write an RGB(A)/gray uint8/uint16 array as PNG with OpenCV (BGR order)."""
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), arr)


# ----------------------------------------------------------------------------- tiling core


@pytest.mark.parametrize(
    "h,w,tile,overlap,multiple", [(37, 50, 8, 3, 1), (64, 40, 16, 6, 1), (10, 10, 16, 4, 1), (48, 32, 8, 4, 2), (33, 31, 5, 0, 1)]
)
def test_tile_windows_partition_and_context(h, w, tile, overlap, multiple):
    plan = tile_windows(h, w, tile, overlap, multiple)
    cover = np.zeros((h, w), dtype=int)
    sizes = set()
    for rows, cols, wr, wc in plan:
        cover[rows, cols] += 1
        sizes.add((wr.stop - wr.start, wc.stop - wc.start))
        assert 0 <= wr.start <= rows.start and rows.stop <= wr.stop <= h
        assert 0 <= wc.start <= cols.start and cols.stop <= wc.stop <= w
        # context: at least `overlap` px on each side, unless the image border is reached
        assert rows.start - wr.start >= overlap or wr.start == 0
        assert wr.stop - rows.stop >= overlap or wr.stop == h
        assert cols.start - wc.start >= overlap or wc.start == 0
        assert wc.stop - cols.stop >= overlap or wc.stop == w
        assert wr.start % multiple == 0 and wc.start % multiple == 0
    assert (cover == 1).all(), "cores must partition the image"
    assert len(sizes) == 1, "all windows have one size"


def test_tile_windows_rejects_bad_arguments():
    with pytest.raises(ValueError, match="tile"):
        tile_windows(10, 10, 0, 2)
    with pytest.raises(ValueError, match="overlap"):
        tile_windows(10, 10, 4, -1)
    with pytest.raises(ValueError, match="multiples of 2"):
        tile_windows(10, 10, 5, 2, multiple=2)


@pytest.mark.parametrize("blocks,expected", [(1, 6), (3, 10)])
def test_receptive_field_radius_srresnet(blocks, expected):
    assert receptive_field_radius(tiny_srresnet(4, blocks), max_radius=24) == expected  # 2 * blocks + 4


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_equals_untiled_when_overlap_covers_receptive_field(scale):
    net = tiny_srresnet(scale)
    r = receptive_field_radius(net, max_radius=24)
    lr = torch.rand(2, 3, 41, 53, generator=torch.Generator().manual_seed(1))
    full = upscale(net, lr)
    tiled = upscale(net, lr, tile=12, overlap=r)
    assert tiled.shape == full.shape == (2, 3, 41 * scale, 53 * scale)
    assert tiled.dtype == torch.float32 and tiled.device.type == "cpu"
    assert float((tiled - full).abs().max()) < 1e-5  # far below 1/255
    with torch.no_grad():
        torch.testing.assert_close(full, net(lr).clamp(0, 1), rtol=0, atol=1e-6)


def test_too_small_overlap_is_visible():
    """The receptive-field statement is not vacuous: overlap 0 changes pixels at tile edges."""
    net = tiny_srresnet(4)
    lr = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    diff = (upscale(net, lr, tile=8, overlap=0) - upscale(net, lr)).abs().max()
    assert float(diff) > 1e-3


def test_tiled_rrdbnet_x2_with_input_multiple():
    torch.manual_seed(0)
    net = RRDBNet(num_features=8, num_blocks=1, growth=4, scale=2).eval()
    r = receptive_field_radius(net, max_radius=48)
    assert r == 38  # 2 * (15 * 1 + 4): its convs run at half resolution
    lr = torch.rand(1, 3, 160, 144, generator=torch.Generator().manual_seed(3))
    diff = (upscale(net, lr, tile=32, overlap=38) - upscale(net, lr)).abs().max()
    assert float(diff) < 1e-5


def test_infer_scale_without_attribute():
    net = tiny_srresnet(2)
    wrapped = nn.Sequential(net)  # no `scale` attribute: found by a probe run
    assert infer_scale(wrapped) == 2
    out = upscale(wrapped, torch.rand(3, 9, 7))
    assert out.shape == (3, 18, 14)


def test_upscale_rejects_wrong_input():
    with pytest.raises(ValueError, match="float"):
        upscale(tiny_srresnet(2), torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# ----------------------------------------------------------------------------- CLI


@pytest.fixture()
def ckpt(tmp_path):
    net = tiny_srresnet(2)
    return save_state_dict(net, tmp_path / "gen.pth"), net


def test_cli_outputs_sizes_depths_and_values(tmp_path, ckpt, demo_rgb):
    path, net = ckpt
    src = tmp_path / "in"
    src.mkdir()
    rgb8 = demo_rgb[:40, :52]
    _write_png(src / "rgb8.png", rgb8)
    rgb16 = (rgb8.astype(np.uint16) * 257 + np.arange(52, dtype=np.uint16)[None, :, None]).astype(np.uint16)
    _write_png(src / "deep.png", rgb16)
    _write_png(src / "gray.png", rgb8[:, :, 0])
    rgba = np.concatenate([rgb8, np.full(rgb8.shape[:2] + (1,), 7, np.uint8)], axis=2)
    _write_png(src / "alpha.png", rgba)
    out = tmp_path / "out"
    assert upscale_cli.main([str(src), "-o", str(out), "--checkpoint", str(path), "--tile", "16", "--tile-overlap", "6"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "deep.png", "gray.png", "rgb8.png"]
    for name in ("rgb8", "gray", "alpha", "deep"):
        arr = decode_image(out / f"{name}.png")
        assert arr.shape == (80, 104, 3)
        assert arr.dtype == (np.uint16 if name == "deep" else np.uint8)
    # values: the untiled network output on the file's pixels, rounded to the output depth
    for name, depth in (("rgb8", 255.0), ("deep", 65535.0), ("alpha", 255.0), ("gray", 255.0)):
        lr = to_tensor(decode_image(src / f"{name}.png"))
        with torch.no_grad():
            ref = net(lr[None]).clamp(0, 1)[0]
        got = to_tensor(decode_image(out / f"{name}.png"))
        assert float((got - ref).abs().max()) <= 1.0 / depth + 1e-6
    # alpha dropped: same result as the RGB file (gray was checked above against R=G=B input)
    assert np.array_equal(decode_image(out / "alpha.png"), decode_image(out / "rgb8.png"))
    # forcing 8 bits on a 16-bit input
    out8 = tmp_path / "out8"
    assert upscale_cli.main([str(src / "deep.png"), "-o", str(out8), "--checkpoint", str(path), "--bit-depth", "8"]) == 0
    assert decode_image(out8 / "deep.png").dtype == np.uint8


def test_cli_tile_zero_equals_tiled(tmp_path, ckpt, demo_rgb):
    path, _ = ckpt
    _write_png(tmp_path / "a.png", demo_rgb[:30, :44])
    assert upscale_cli.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "t0"), "--checkpoint", str(path), "--tile", "0"]) == 0
    assert (
        upscale_cli.main(
            [str(tmp_path / "a.png"), "-o", str(tmp_path / "t8"), "--checkpoint", str(path), "--tile", "8", "--tile-overlap", "6"]
        )
        == 0
    )
    a, b = decode_image(tmp_path / "t0" / "a.png"), decode_image(tmp_path / "t8" / "a.png")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _one_line_error(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if line.strip() and "upscaling" not in line and "tiles" not in line]  # drop bars
    assert len(err) == 1 and err[0].startswith(f"{prog}: error: "), err
    return err[0]


def test_cli_errors(tmp_path, ckpt, demo_rgb, capsys):
    path, _ = ckpt
    _write_png(tmp_path / "a.png", demo_rgb[:20, :20])
    cv2.imwrite(str(tmp_path / "a.jpg"), demo_rgb[:20, :20])
    rc = upscale_cli.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "missing.pth")])
    assert rc == 2 and "missing.pth" in _one_line_error(capsys, "ranksrgan-upscale")
    rc = upscale_cli.main([str(tmp_path), "-o", str(tmp_path / "o"), "--checkpoint", str(path)])
    assert rc == 2 and "a.png" in _one_line_error(capsys, "ranksrgan-upscale")  # a.jpg and a.png collide
    rc = upscale_cli.main([str(tmp_path / "a.png"), "-o", str(tmp_path), "--checkpoint", str(path)])
    assert rc == 2 and "overwrite the input" in _one_line_error(capsys, "ranksrgan-upscale")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rc = upscale_cli.main([str(tmp_path / "bad.png"), "-o", str(tmp_path / "o"), "--checkpoint", str(path)])
    assert rc == 1 and "bad.png" in _one_line_error(capsys, "ranksrgan-upscale")
    rc = upscale_cli.main([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--checkpoint", str(path), "--tile", "-1"])
    assert rc == 2 and "--tile" in _one_line_error(capsys, "ranksrgan-upscale")


@pytest.mark.parametrize("suffix,fmt", [(".pth", "state_dict"), (".pt", "torchscript")])
def test_export_cli(tmp_path, ckpt, suffix, fmt):
    from ranksrgan.checkpoints import load_generator

    path, net = ckpt
    out = tmp_path / f"model{suffix}"
    assert export_cli.main(["--checkpoint", str(path), "--out", str(out)]) == 0
    x = torch.rand(1, 3, 10, 12)
    loaded = load_generator(out) if fmt == "state_dict" else torch.jit.load(str(out))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_export_cli_onnx(tmp_path, ckpt):
    onnx = pytest.importorskip("onnx")
    path, _ = ckpt
    out = tmp_path / "model.onnx"
    assert export_cli.main(["--checkpoint", str(path), "--out", str(out)]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_export_cli_errors(tmp_path, ckpt, capsys):
    path, _ = ckpt
    assert export_cli.main(["--checkpoint", str(path), "--out", str(tmp_path / "m.bin")]) == 2
    assert "format" in _one_line_error(capsys, "ranksrgan-export")
    assert export_cli.main(["--checkpoint", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "m.pth")]) == 2
    assert "nope.pth" in _one_line_error(capsys, "ranksrgan-export")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiled_on_cuda_matches_cpu():
    net = tiny_srresnet(4)
    lr = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(4))
    cpu = upscale(net, lr, tile=12, overlap=6)
    gpu = upscale(net.to("cuda"), lr, tile=12, overlap=6)
    assert gpu.device.type == "cpu"  # assembled on the host
    assert float((gpu - cpu).abs().max()) < 1e-4
