"""MATLAB ``imresize`` parity, checked against an independent per-pixel transcription of MATLAB's
algorithm (``contributions`` + ``imresizemex``) and closed-form properties of the Keys kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ranksrgan.ops import imresize, mod_crop


def _matlab_cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def _reference_resize_1d(signal: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """Plain loops over output pixels, written from MATLAB's documented algorithm."""
    in_len = len(signal)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros(out_len)
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = math.ceil(width) + 2
        weights, idxs = [], []
        for k in range(taps):
            j = left + k
            w = scale * _matlab_cubic(scale * (u - j)) if scale < 1 else _matlab_cubic(u - j)
            # symmetric mirroring (1-based): 0 -> 1, -1 -> 2, n+1 -> n ...
            jj = j
            while jj < 1 or jj > in_len:
                jj = 1 - jj if jj < 1 else 2 * in_len + 1 - jj
            weights.append(w)
            idxs.append(jj - 1)
        total = sum(weights)
        out[i - 1] = sum(w / total * signal[j] for w, j in zip(weights, idxs))
    return out


def _reference_resize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    rows = np.stack([_reference_resize_1d(img[:, c], oh, scale) for c in range(w)], axis=1)
    return np.stack([_reference_resize_1d(rows[r], ow, scale) for r in range(oh)], axis=0)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 4])
@pytest.mark.parametrize("shape", [(24, 36), (23, 31)])
def test_matches_reference_transcription(scale, shape, demo_rgb):
    img = demo_rgb[: shape[0], : shape[1], 1].astype(np.float64) / 255.0
    expected = _reference_resize(img, scale)
    got = imresize(torch.from_numpy(img), scale).numpy()
    assert got.shape == expected.shape == (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale))
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert np.abs(got - expected).max() * 255 < 1  # the bar: within 1/255 everywhere


def test_kernel_samples_on_impulse_upscale():
    # x2 upscaling of an impulse samples the Keys kernel at offsets ±0.25, ±0.75, ±1.25, ±1.75.
    x = torch.zeros(1, 9, dtype=torch.float64)
    x[0, 4] = 1.0
    out = imresize(x, size=(1, 18))[0]
    expected = [-0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375]
    np.testing.assert_allclose(out[5:13].numpy(), expected, atol=1e-12)


def test_constant_and_linear_are_reproduced():
    c = torch.full((2, 3, 17, 19), 0.37, dtype=torch.float64)
    for s in (0.25, 1 / 3, 2, 4):
        assert torch.allclose(imresize(c, s), torch.full_like(imresize(c, s), 0.37), atol=1e-12)
    # Cubic convolution reproduces linear ramps away from the mirrored border.
    ramp = torch.arange(64, dtype=torch.float64).repeat(8, 1) / 64
    up = imresize(ramp, 2)
    u = (torch.arange(1, 129, dtype=torch.float64) / 2 + 0.5 * (1 - 1 / 2) - 1) / 64
    assert torch.allclose(up[:, 8:-8], u[8:-8].expand(16, -1), atol=1e-12)


def test_batched_dtype_and_layouts():
    x = torch.rand(2, 3, 21, 30, dtype=torch.float64)
    batched = imresize(x, 1 / 3)
    for b in range(2):
        assert torch.allclose(batched[b], imresize(x[b], 1 / 3), atol=0)
    assert torch.allclose(imresize(x.float(), 1 / 3).double(), batched, atol=1e-5)
    assert imresize(x.float(), 0.5).dtype == torch.float32
    assert imresize(x, size=(10, 7)).shape == (2, 3, 10, 7)


def test_output_size_is_matlab_ceil():
    x = torch.rand(1, 1, 301, 299)
    assert imresize(x, 0.25).shape[-2:] == (76, 75)
    assert imresize(x, 1 / 3).shape[-2:] == (101, 100)
    assert imresize(x, 4).shape[-2:] == (1204, 1196)


def test_bad_arguments():
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), 0.5, size=(2, 2))
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), -1.0)


def test_not_torch_interpolate():
    # The whole point: torch's antialiased bicubic is a different function.
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    ours = imresize(x, 0.25)
    theirs = torch.nn.functional.interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False)
    assert (ours - theirs).abs().max() > 1e-3


def test_mod_crop():
    x = torch.zeros(3, 31, 42)
    assert mod_crop(x, 4).shape == (3, 28, 40)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 40, 52, dtype=torch.float64)
    assert torch.allclose(imresize(x.cuda(), 0.25).cpu(), imresize(x, 0.25), atol=1e-12)


def _gathered_resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Rows then columns, every tap gathered with its per-pixel weight column (no strided views,
    no shared scalars), accumulated in the order and with the operations imresize uses."""
    from ranksrgan.ops.resize import _contributions

    for dim in (-2, -1):
        x = x.transpose(-1, -2) if dim == -1 else x
        n = x.shape[-2]
        idx, w = _contributions(n, math.ceil(n * scale - 1e-9), scale, True)
        k = torch.remainder(idx, 2 * n)
        idx = torch.where(k < n, k, 2 * n - 1 - k)
        out = x.index_select(-2, idx[:, 0]) * w[:, :1]
        for t in range(1, idx.shape[1]):
            out.addcmul_(x.index_select(-2, idx[:, t]), w[:, t : t + 1])
        x = out.transpose(-1, -2) if dim == -1 else out
    return x


@pytest.mark.parametrize("scale", [1 / 2, 1 / 4, 1 / 3, 2, 4, 0.3])
def test_strided_taps_equal_gathered_taps_bitwise(scale):
    from ranksrgan.ops.resize import _resize_plan

    x = torch.rand(2, 3, 37, 42, dtype=torch.float64)
    assert torch.equal(imresize(x, scale), _gathered_resize(x, scale))
    if 1 / scale == round(1 / scale):  # integer downscaling: strided views and shared weights only
        _, _, taps = _resize_plan(42, math.ceil(42 * scale), scale, True)
        assert all(isinstance(t.rows, slice) and isinstance(t.weight, float) for t in taps)


def test_scratch_arrays_give_the_same_result_and_are_reused():
    from ranksrgan.ops.scratch import ScratchArrays

    scratch = ScratchArrays(max_bytes=1 << 20)
    x = torch.rand(3, 30, 44, dtype=torch.float64)
    for scale in (0.5, 2, 1 / 3):
        assert torch.equal(imresize(x, scale, scratch=scratch), imresize(x, scale))
    first = imresize(x, 0.5, scratch=scratch)
    assert imresize(x, 0.5, scratch=scratch).data_ptr() == first.data_ptr()  # same memory, reused
    small = ScratchArrays(max_bytes=0)  # nothing fits: plain allocations
    assert torch.equal(imresize(x, 0.5, scratch=small), imresize(x, 0.5)) and small.kept_bytes() == 0


def test_scratch_arrays_are_per_thread():
    import threading

    from ranksrgan.ops.scratch import ScratchArrays

    scratch = ScratchArrays(max_bytes=1 << 20)
    mine = scratch.get("a", (4, 4), torch.float64, torch.device("cpu"))
    seen = {}

    def other() -> None:
        theirs = scratch.get("a", (4, 4), torch.float64, torch.device("cpu"))
        seen["ptr"], seen["bytes"] = theirs.data_ptr(), scratch.kept_bytes()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen["ptr"] != mine.data_ptr() and seen["bytes"] == 128 == scratch.kept_bytes()
    scratch.clear()
    assert scratch.kept_bytes() == 0
