"""Loader tests: state dicts written here with the released key names and shapes, checked
against the natively loaded net and against functional forwards written from the
architecture facts (torch.nn.functional on the raw tensors)."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ranksrgan.checkpoints import (
    CheckpointError,
    CheckpointReadError,
    UnsafeCheckpointError,
    load_generator,
    load_ranker,
)
from ranksrgan.export import save_state_dict
from ranksrgan.nets import Ranker, RRDBNet, SRResNet, net_spec

NF = 8


def conv(w: dict, name: str, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    return F.conv2d(x, w[f"{name}.weight"], w.get(f"{name}.bias"), stride=stride, padding=1)


def random_weights(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """Small random tensors; BN running variances positive."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("weight") and len(shape) == 1:  # BN gamma
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.1
    return out


def save(tmp_path: Path, state: dict, prefix: str, name: str = "net.pth") -> Path:
    path = tmp_path / name
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return path


# ----------------------------------------------------------------------------- SRResNet

# Per layout: released stem of each role. Old layout = one flattened nn.Sequential:
# model.0 conv_first | model.1 = shortcut(sub.0..nb-1 res blocks (res.0 conv, res.1 ReLU,
# res.2 conv), sub.nb LR conv) | per upsampler: conv, PixelShuffle, ReLU | HR conv, ReLU | last conv.


def srresnet_roles(layout: str, nb: int, scale: int) -> dict:
    ups = 2 if scale == 4 else 1
    if layout == "new":
        return {
            "first": "conv_first",
            "blocks": [(f"recon_trunk.{i}.conv1", f"recon_trunk.{i}.conv2") for i in range(nb)],
            "lr": "LRconv",
            "ups": ["upconv1", "upconv2"][:ups],
            "hr": "HRconv",
            "last": "conv_last",
        }
    up_idx = [2 + 3 * k for k in range(ups)]
    hr = 2 + 3 * ups
    return {
        "first": "model.0",
        "blocks": [(f"model.1.sub.{i}.res.0", f"model.1.sub.{i}.res.2") for i in range(nb)],
        "lr": f"model.1.sub.{nb}",
        "ups": [f"model.{n}" for n in up_idx],
        "hr": f"model.{hr}",
        "last": f"model.{hr + 2}",
    }


def srresnet_shapes(roles: dict, scale: int) -> dict:
    r = 3 if scale == 3 else 2
    shapes = {}

    def add(stem, cout, cin):
        shapes[f"{stem}.weight"] = (cout, cin, 3, 3)
        shapes[f"{stem}.bias"] = (cout,)

    add(roles["first"], NF, 3)
    for c1, c2 in roles["blocks"]:
        add(c1, NF, NF)
        add(c2, NF, NF)
    add(roles["lr"], NF, NF)
    for up in roles["ups"]:
        add(up, NF * r * r, NF)
    add(roles["hr"], NF, NF)
    add(roles["last"], 3, NF)
    return shapes


def srresnet_reference(w: dict, roles: dict, scale: int, x: torch.Tensor) -> torch.Tensor:
    """conv_first (no act) -> [x + conv(relu(conv(x)))]*nb -> LR conv + global skip ->
    (conv -> PixelShuffle -> ReLU) per stage -> HR conv -> ReLU -> last conv."""
    r = 3 if scale == 3 else 2
    fea = conv(w, roles["first"], x)
    h = fea
    for c1, c2 in roles["blocks"]:
        h = h + conv(w, c2, F.relu(conv(w, c1, h)))
    h = conv(w, roles["lr"], h) + fea
    for up in roles["ups"]:
        h = F.relu(F.pixel_shuffle(conv(w, up, h), r))
    return conv(w, roles["last"], F.relu(conv(w, roles["hr"], h)))


def native_srresnet(w: dict, roles: dict, nb: int, scale: int) -> SRResNet:
    native = srresnet_roles("new", nb, scale)
    rename = {roles["first"]: native["first"], roles["lr"]: native["lr"], roles["hr"]: native["hr"]}
    rename[roles["last"]] = native["last"]
    rename.update(zip(roles["ups"], native["ups"]))
    for old, new in zip(roles["blocks"], native["blocks"]):
        rename.update(zip(old, new))
    net = SRResNet(num_features=NF, num_blocks=nb, scale=scale)
    net.load_state_dict({f"{rename[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v for k, v in w.items()})
    return net.eval()


@pytest.mark.parametrize("prefix", ["", "module."])
@pytest.mark.parametrize("layout", ["new", "old"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_load_released_srresnet(tmp_path, layout, scale, prefix):
    nb = 2
    roles = srresnet_roles(layout, nb, scale)
    w = random_weights(srresnet_shapes(roles, scale))
    path = save(tmp_path, w, prefix)
    net = load_generator(path)
    assert isinstance(net, SRResNet) and not net.training
    assert net.config == {"in_channels": 3, "out_channels": 3, "num_features": NF, "num_blocks": nb, "scale": scale}
    x = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(out, native_srresnet(w, roles, nb, scale)(x), rtol=0, atol=0)
        torch.testing.assert_close(out, srresnet_reference(w, roles, scale, x), rtol=1e-5, atol=1e-6)


def test_old_layout_x4_uses_released_indices(tmp_path):
    roles = srresnet_roles("old", 16, 4)
    assert (roles["lr"], roles["ups"], roles["hr"], roles["last"]) == (
        "model.1.sub.16",
        ["model.2", "model.5"],
        "model.8",
        "model.10",
    )


# ----------------------------------------------------------------------------- RRDBNet


def rrdb_roles(layout: str, nb: int) -> dict:
    if layout == "esrgan":
        block = "RRDB_trunk.{i}.RDB{k}.conv{m}"
        outer = ["conv_first", "trunk_conv", "upconv1", "upconv2", "HRconv", "conv_last"]
    elif layout == "basicsr":
        block = "body.{i}.rdb{k}.conv{m}"
        outer = ["conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]
    else:  # oldest flattened: conv_block = Sequential(conv, act) so convs sit at ".0"
        block = "model.1.sub.{i}.RDB{k}.conv{m}.0"
        outer = ["model.0", f"model.1.sub.{nb}", "model.3", "model.6", "model.8", "model.10"]
    blocks = [[[block.format(i=i, k=k, m=m) for m in range(1, 6)] for k in (1, 2, 3)] for i in range(nb)]
    return dict(zip(["first", "trunk", "up1", "up2", "hr", "last"], outer), blocks=blocks)


def rrdb_shapes(roles: dict, gc: int, in_conv: int) -> dict:
    shapes = {}

    def add(stem, cout, cin):
        shapes[f"{stem}.weight"] = (cout, cin, 3, 3)
        shapes[f"{stem}.bias"] = (cout,)

    add(roles["first"], NF, in_conv)
    for rrdb in roles["blocks"]:
        for rdb in rrdb:
            for m, stem in enumerate(rdb):
                add(stem, NF if m == 4 else gc, NF + m * gc)
    for role in ("trunk", "up1", "up2", "hr"):
        add(roles[role], NF, NF)
    add(roles["last"], 3, NF)
    return shapes


def rrdb_reference(w: dict, roles: dict, x: torch.Tensor, unshuffle: int) -> torch.Tensor:
    """(pixel-unshuffle) -> conv_first -> RRDBs -> trunk conv + skip -> 2x(nearest x2, conv,
    lrelu .2) -> HR conv, lrelu .2 -> last conv. Dense block: x + 0.2*conv5(cat(...))."""
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    if unshuffle > 1:
        x = F.pixel_unshuffle(x, unshuffle)
    fea = conv(w, roles["first"], x)
    h = fea
    for rrdb in roles["blocks"]:
        inner = h
        for rdb in rrdb:
            feats = [inner]
            for m, stem in enumerate(rdb):
                y = conv(w, stem, torch.cat(feats, 1))
                feats.append(lrelu(y) if m < 4 else y)
            inner = inner + 0.2 * feats[-1]
        h = h + 0.2 * inner
    h = fea + conv(w, roles["trunk"], h)
    h = lrelu(conv(w, roles["up1"], F.interpolate(h, scale_factor=2, mode="nearest")))
    h = lrelu(conv(w, roles["up2"], F.interpolate(h, scale_factor=2, mode="nearest")))
    return conv(w, roles["last"], lrelu(conv(w, roles["hr"], h)))


@pytest.mark.parametrize("prefix", ["", "module."])
@pytest.mark.parametrize(("layout", "scale"), [("esrgan", 4), ("basicsr", 4), ("basicsr", 2), ("oldest", 4)])
def test_load_released_rrdbnet(tmp_path, layout, scale, prefix):
    nb, gc = 2, 4
    roles = rrdb_roles(layout, nb)
    unshuffle = 4 // scale
    w = random_weights(rrdb_shapes(roles, gc, 3 * unshuffle**2), seed=1)
    net = load_generator(save(tmp_path, w, prefix))
    assert isinstance(net, RRDBNet)
    assert net.config == {
        "in_channels": 3, "out_channels": 3, "num_features": NF, "num_blocks": nb, "growth": gc, "scale": scale,
    }  # fmt: skip
    native_roles = rrdb_roles("esrgan", nb)
    rename = {roles[r]: native_roles[r] for r in ("first", "trunk", "up1", "up2", "hr", "last")}
    for a, b in zip(roles["blocks"], native_roles["blocks"]):
        for ra, rb in zip(a, b):
            rename.update(zip(ra, rb))
    native = RRDBNet(num_features=NF, num_blocks=nb, growth=gc, scale=scale).eval()
    native.load_state_dict({f"{rename[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v for k, v in w.items()})
    x = torch.rand(1, 3, 8, 4)
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(out, native(x), rtol=0, atol=0)
        torch.testing.assert_close(out, rrdb_reference(w, roles, x, unshuffle), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- Ranker

# VGG-12 body: (conv a 3x3 s1, conv b 4x4 s2) per block; BN after all but the first conv.
# Old layout = one flattened Sequential: conv0_0, lrelu, then (conv, BN, lrelu) per layer,
# so convs sit at features.0, 2, 5, 8, ..., 26 and BNs at features.3, 6, ..., 27.


def ranker_roles(layout: str) -> list[tuple[str, str | None, int]]:
    """[(conv stem, bn stem or None, stride)] for VGG-12 in order."""
    roles = []
    for i in range(5):
        for j, stride in ((0, 1), (1, 2)):
            k = len(roles)
            if layout == "new":
                roles.append((f"conv{i}_{j}", None if k == 0 else f"bn{i}_{j}", stride))
            else:
                c = 0 if k == 0 else 3 * k - 1
                roles.append((f"features.{c}", None if k == 0 else f"features.{c + 1}", stride))
    return roles


def ranker_shapes(roles, conv_bias: bool) -> dict:
    widths = [NF, NF, 2 * NF, 2 * NF, 4 * NF, 4 * NF, 8 * NF, 8 * NF, 8 * NF, 8 * NF]
    shapes, cin = {}, 3
    for (c, bn, stride), cout in zip(roles, widths):
        shapes[f"{c}.weight"] = (cout, cin, 4 if stride == 2 else 3, 4 if stride == 2 else 3)
        if conv_bias or bn is None:
            shapes[f"{c}.bias"] = (cout,)
        if bn is not None:
            for s in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{bn}.{s}"] = (cout,)
            shapes[f"{bn}.num_batches_tracked"] = ()
        cin = cout
    shapes.update({"classifier.0.weight": (100, 8 * NF), "classifier.0.bias": (100,)})
    shapes.update({"classifier.2.weight": (1, 100), "classifier.2.bias": (1,)})
    return shapes


def ranker_reference(w: dict, roles, x: torch.Tensor) -> torch.Tensor:
    """conv -> BN (eval stats) -> lrelu .2 per layer; mean over H, W; linear, lrelu .2, linear."""
    for c, bn, stride in roles:
        x = F.conv2d(x, w[f"{c}.weight"], w.get(f"{c}.bias"), stride=stride, padding=1)
        if bn is not None:
            x = F.batch_norm(
                x, w[f"{bn}.running_mean"], w[f"{bn}.running_var"], w[f"{bn}.weight"], w[f"{bn}.bias"], False, 0.0, 1e-5
            )
        x = F.leaky_relu(x, 0.2)
    x = F.leaky_relu(F.linear(x.mean((2, 3)), w["classifier.0.weight"], w["classifier.0.bias"]), 0.2)
    return F.linear(x, w["classifier.2.weight"], w["classifier.2.bias"])[:, 0]


@pytest.mark.parametrize("prefix", ["", "module."])
@pytest.mark.parametrize(("layout", "conv_bias"), [("new", True), ("new", False), ("old", True)])
def test_load_released_ranker(tmp_path, layout, conv_bias, prefix):
    roles = ranker_roles(layout)
    w = random_weights(ranker_shapes(roles, conv_bias), seed=2)
    net = load_ranker(save(tmp_path, w, prefix))
    assert isinstance(net, Ranker)
    assert net.config == {"variant": "vgg12", "in_channels": 3, "num_features": NF, "conv_bias": conv_bias}
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training  # frozen: stays in eval mode
    native_roles = ranker_roles("new")
    rename = {}
    for (c, bn, _), (nc, nbn, _) in zip(roles, native_roles):
        rename[c] = nc
        if bn is not None:
            rename[bn] = nbn
    rename.update({"classifier.0": "classifier.0", "classifier.2": "classifier.2"})
    native = Ranker(num_features=NF, conv_bias=conv_bias).eval()
    native.load_state_dict({f"{rename[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v for k, v in w.items()})
    x = torch.rand(3, 3, 64, 96)  # final feature map 2x3, so the pooling is exercised
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(out, native(x), rtol=0, atol=0)
        torch.testing.assert_close(out, ranker_reference(w, roles, x), rtol=1e-5, atol=1e-6)


def test_ranker_without_num_batches_tracked_loads(tmp_path):
    roles = ranker_roles("old")
    w = random_weights(ranker_shapes(roles, True), seed=3)
    w = {k: v for k, v in w.items() if not k.endswith("num_batches_tracked")}
    net = load_ranker(save(tmp_path, w, ""))
    x = torch.rand(2, 3, 64, 64)
    assert int(net.bn1_0.num_batches_tracked) == 0
    with torch.no_grad():
        torch.testing.assert_close(net(x), ranker_reference(w, roles, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["vgg8", "vgg16"])
def test_load_ranker_variants_by_conv_count(tmp_path, variant):
    src = Ranker(variant, num_features=4)
    path = tmp_path / "r.pth"
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, path)
    assert load_ranker(path).config["variant"] == variant


# ----------------------------------------------------------------------------- our own files


def lightning_like_checkpoint(component: str, net: torch.nn.Module, **extra) -> dict:
    state = {f"{component}.{k}": v for k, v in net.state_dict().items()}
    state["discriminator.linear2.weight"] = torch.zeros(1, 100)
    return {
        "epoch": 0,
        "global_step": 4,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": state,
        "hyper_parameters": {"lr": 1e-4, "betas": [0.9, 0.99]},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4}]}],
        "lr_schedulers": [{"milestones": collections.Counter([50_000, 100_000]), "gamma": 0.5}],
        "ranksrgan_arch": net_spec(net),
        **extra,
    }


def test_load_our_lightning_generator_checkpoint(tmp_path):
    net = SRResNet(num_features=NF, num_blocks=1, scale=3).eval()
    path = tmp_path / "last.ckpt"
    torch.save(lightning_like_checkpoint("generator", net), path)
    loaded = load_generator(path)
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds a SRResNet, not a ranker; use load_generator"):
        load_ranker(path)


def test_load_our_lightning_ranker_checkpoint(tmp_path):
    net = Ranker("vgg8", num_features=4).eval()
    path = tmp_path / "ranker.ckpt"
    torch.save(lightning_like_checkpoint("ranker", net), path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_ranker(path)(x), net(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="use load_ranker"):
        load_generator(path)


def test_load_our_exported_state_dict(tmp_path):
    net = RRDBNet(num_features=NF, num_blocks=1, growth=4, scale=2).eval()
    path = save_state_dict(net, tmp_path / "g.pth")
    x = torch.rand(1, 3, 4, 6)
    with torch.no_grad():
        torch.testing.assert_close(load_generator(path)(x), net(x), rtol=0, atol=0)


def test_checkpoint_with_omegaconf_hparams_is_refused_clearly(tmp_path):
    from omegaconf import OmegaConf

    net = SRResNet(num_features=4, num_blocks=1)
    path = tmp_path / "hydra.ckpt"
    torch.save(lightning_like_checkpoint("generator", net, hyper_parameters=OmegaConf.create({"a": 1})), path)
    with pytest.raises(UnsafeCheckpointError, match=r"hydra\.ckpt.*arbitrary unpickling.*DictConfig.*plain containers"):
        load_generator(path)


def test_real_lightning_checkpoint_loads(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.save_hyperparameters({"num_features": 4, "lr": 1e-3})
            self.generator = SRResNet(num_features=4, num_blocks=1, scale=2)

        def training_step(self, batch, _):
            lr, hr = batch
            return F.l1_loss(self.generator(lr), hr)

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.parameters(), lr=1e-3)
            return [opt], [torch.optim.lr_scheduler.MultiStepLR(opt, [2, 4], 0.5)]

        def on_save_checkpoint(self, checkpoint):
            checkpoint["ranksrgan_arch"] = net_spec(self.generator)

    data = torch.utils.data.TensorDataset(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 8, 8))
    module = Module()
    trainer = pl.Trainer(
        max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=1))
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_generator(path)
    x = torch.rand(1, 3, 4, 4)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module.generator(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------- errors


def test_unknown_layout_lists_missing_and_unexpected(tmp_path):
    w = {f"head.{i}.weight": torch.zeros(2, 2) for i in range(20)}
    w["conv_first.weight"] = torch.zeros(64, 3, 3, 3)
    path = save(tmp_path, w, "", name="mystery.pth")
    with pytest.raises(ValueError) as info:
        load_generator(path)
    text = str(info.value)
    assert "mystery.pth" in text and "matches no known generator layout" in text
    assert "closest is SRResNet" in text and "missing keys (75): conv_first.bias" in text
    assert "unexpected keys (20)" in text and "head.0.weight" in text and "(+12 more)" in text
    with pytest.raises(ValueError, match="mystery.pth: matches no known ranker layout; closest is Ranker"):
        load_ranker(path)


def test_known_layout_with_extra_keys_lists_them(tmp_path):
    roles = srresnet_roles("new", 1, 4)
    w = random_weights(srresnet_shapes(roles, 4))
    w["recon_trunk.0.bn.weight"] = torch.ones(NF)
    path = save(tmp_path, w, "")
    with pytest.raises(
        ValueError, match=r"net\.pth: weights do not fit SRResNet.*unexpected keys \(1\): recon_trunk\.0\.bn\.weight"
    ):
        load_generator(path)


def test_shape_mismatch_in_our_spec_is_reported(tmp_path):
    net = SRResNet(num_features=4, num_blocks=1)
    payload = {"ranksrgan_arch": {"name": "SRResNet", "kwargs": {"num_features": 8, "num_blocks": 1}}}
    payload["state_dict"] = net.state_dict()
    torch.save(payload, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"bad\.pth: weights do not fit SRResNet\(num_features=8.*shape mismatch"):
        load_generator(tmp_path / "bad.pth")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_generator(tmp_path / "nothing.pth")
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_ranker(tmp_path / "nothing.pth")


def test_non_checkpoint_file_is_rejected(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello world")
    with pytest.raises(ValueError, match="notes.pth: not a readable PyTorch checkpoint"):
        load_generator(path)
    torch.save({"a": 1}, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="plain.pth: no state dict found"):
        load_generator(tmp_path / "plain.pth")


@pytest.mark.parametrize("kind", ["random", "html", "empty", "truncated"])
def test_corrupt_file_is_not_called_unsafe(tmp_path, kind):
    """Bytes that are no checkpoint are a read error, not an unpickling refusal."""
    path = tmp_path / f"{kind}.pth"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "html":
        path.write_text("<!DOCTYPE html><html><body>Sign in to download</body></html>")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        save_state_dict(SRResNet(num_features=NF, num_blocks=1), tmp_path / "whole.pth")
        data = (tmp_path / "whole.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointReadError) as info:
        load_generator(path)
    text = str(info.value)
    assert text.startswith(f"{path}: not a readable PyTorch checkpoint: ") and "\n" not in text
    assert "unpickling" not in text and "refused" not in text and not isinstance(info.value, UnsafeCheckpointError)


def test_checkpoint_errors_share_a_base(tmp_path):
    """Weights that fit no network: CheckpointError (a ValueError), message unchanged."""
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="odd.pth: matches no known generator layout"):
        load_generator(tmp_path / "odd.pth")
    assert issubclass(UnsafeCheckpointError, CheckpointError) and issubclass(CheckpointReadError, CheckpointError)
    with pytest.raises(IsADirectoryError, match="is a folder, not a checkpoint file"):
        load_generator(tmp_path)


class _Malicious:
    """Unpickling this calls open(marker, "w"), i.e. creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv_first.weight": torch.zeros(1)}, "payload": _Malicious(marker)}, path)
    assert not marker.exists()
    for loader in (load_generator, load_ranker):
        with pytest.raises(UnsafeCheckpointError, match="evil.pth: refused: reading it needs arbitrary unpickling"):
            loader(path)
        assert not marker.exists()
    # control: an unrestricted unpickler would have run the payload
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_to_cuda(tmp_path):
    net = SRResNet(num_features=NF, num_blocks=1).eval()
    path = save_state_dict(net, tmp_path / "g.pth")
    loaded = load_generator(path, device="cuda")
    ranker = load_ranker(save_state_dict(Ranker(num_features=4), tmp_path / "r.pth"), device="cuda")
    assert next(loaded.parameters()).is_cuda and next(ranker.parameters()).is_cuda
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x.cuda()).cpu(), net(x), rtol=1e-3, atol=1e-4)
