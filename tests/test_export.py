"""Export tests: atomic state-dict saving, TorchScript and ONNX outputs."""

from __future__ import annotations

import pytest
import torch

from ranksrgan.checkpoints import load_generator, load_ranker
from ranksrgan.export import export_onnx, export_torchscript, save_state_dict
from ranksrgan.nets import Ranker, RRDBNet, SRResNet, VGGDiscriminator

onnx = pytest.importorskip("onnx")


def tiny_nets():
    return [
        (SRResNet(num_features=8, num_blocks=2, scale=4), (1, 3, 6, 6), (2, 3, 9, 7)),
        (SRResNet(num_features=8, num_blocks=1, scale=3), (1, 3, 6, 6), (2, 3, 5, 8)),
        (RRDBNet(num_features=8, num_blocks=1, growth=4, scale=2), (1, 3, 6, 6), (2, 3, 4, 10)),
        (Ranker("vgg12", num_features=4), (2, 3, 40, 40), (3, 3, 64, 36)),
        (VGGDiscriminator(num_features=4, input_size=64), (2, 3, 64, 64), (3, 3, 64, 64)),
    ]


def test_save_state_dict_payload_and_round_trip(tmp_path):
    net = SRResNet(num_features=8, num_blocks=1, scale=2).eval()
    path = save_state_dict(net, tmp_path / "g.pth")
    payload = torch.load(path, weights_only=True)
    assert payload["ranksrgan_arch"] == {"name": "SRResNet", "kwargs": net.config}
    assert payload["state_dict"].keys() == net.state_dict().keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pth"]  # no temp files left
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(load_generator(path)(x), net(x), rtol=0, atol=0)
    ranker = Ranker("vgg16", num_features=4).eval()
    with torch.no_grad():
        y = torch.rand(2, 3, 32, 32)
        torch.testing.assert_close(load_ranker(save_state_dict(ranker, tmp_path / "r.pth"))(y), ranker(y))


def test_save_state_dict_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "g.pth"
    path.write_bytes(b"previous")

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_state_dict(SRResNet(num_features=4, num_blocks=1), path)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pth"]


def test_save_creates_missing_folder(tmp_path):
    path = save_state_dict(SRResNet(num_features=4, num_blocks=1), tmp_path / "new" / "g.pth")
    assert path.is_file()


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*:FutureWarning")
@pytest.mark.parametrize("index", range(5))
def test_torchscript_matches_eager(tmp_path, index):
    net, example_shape, other_shape = tiny_nets()[index]
    net.train()
    path = export_torchscript(net, tmp_path / "net.pt", torch.rand(example_shape))
    assert net.training  # mode restored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt"]
    scripted = torch.jit.load(str(path))
    net.eval()
    x = torch.rand(other_shape)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), rtol=1e-5, atol=1e-6)


def _run_onnx(path, x: torch.Tensor) -> torch.Tensor:
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        return torch.from_numpy(ReferenceEvaluator(str(path)).run(None, {"input": x.numpy()})[0])


@pytest.mark.parametrize("index", range(5))
def test_onnx_matches_eager(tmp_path, index):
    net, example_shape, other_shape = tiny_nets()[index]
    dynamic = not isinstance(net, VGGDiscriminator)
    path = export_onnx(net, tmp_path / "net.onnx", torch.rand(example_shape), dynamic_hw=dynamic)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    assert [d.dim_param for d in dims[2:]] == (["height", "width"] if dynamic else ["", ""])
    x = torch.rand(other_shape)
    with torch.no_grad():
        torch.testing.assert_close(_run_onnx(path, x), net.eval()(x), rtol=1e-4, atol=1e-5)
