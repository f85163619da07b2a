"""Architecture tests: shapes, parameter counts, key layouts, modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ranksrgan.nets import (
    NETS,
    RANKER_VARIANTS,
    Ranker,
    RRDBNet,
    SRResNet,
    VGGDiscriminator,
    VGGFeatureExtractor,
    build_net,
    net_spec,
)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_default(cls, *args, **kwargs) -> int:
    """Parameter count of a full-size net, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return count(cls(*args, **kwargs))


# ----------------------------------------------------------------------------- SRResNet


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_output_shape(scale):
    net = SRResNet(num_features=8, num_blocks=2, scale=scale)
    out = net(torch.rand(2, 3, 5, 7))
    assert out.shape == (2, 3, 5 * scale, 7 * scale)


def test_srresnet_default_parameter_count():
    assert count_default(SRResNet) == 1_554_499


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_key_layout_is_the_released_one(scale):
    net = SRResNet(num_features=8, num_blocks=3, scale=scale)
    stems = ["conv_first", "LRconv", "upconv1", "HRconv", "conv_last"]
    stems += [f"recon_trunk.{i}.conv{j}" for i in range(3) for j in (1, 2)]
    if scale == 4:
        stems.append("upconv2")
    expected = {f"{s}.{p}" for s in stems for p in ("weight", "bias")}
    assert set(net.state_dict()) == expected
    width = {2: 32, 3: 72, 4: 32}[scale]
    assert net.upconv1.weight.shape == (width, 8, 3, 3)


def test_srresnet_output_is_not_clamped():
    net = SRResNet(num_features=8, num_blocks=1, scale=2)
    with torch.no_grad():
        net.conv_last.bias.fill_(5.0)
    assert net(torch.rand(1, 3, 4, 4)).min() > 1.0


def test_srresnet_global_skip_and_relu_only():
    """With a zero trunk, the net is conv_first -> upsampling; no activation after conv_first."""
    net = SRResNet(num_features=4, num_blocks=1, scale=2)
    with torch.no_grad():
        for p in list(net.recon_trunk.parameters()) + list(net.LRconv.parameters()):
            p.zero_()
    x = torch.rand(1, 3, 6, 6)
    fea = net.conv_first(x)  # may be negative: no activation may follow it
    expected = net.conv_last(F.relu(net.HRconv(F.relu(F.pixel_shuffle(net.upconv1(fea), 2)))))
    torch.testing.assert_close(net(x), expected)


@pytest.mark.parametrize("kwargs", [{"scale": 8}, {"num_blocks": 0}])
def test_srresnet_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="SRResNet"):
        SRResNet(**kwargs)


def test_srresnet_rejects_wrong_channels():
    with pytest.raises(ValueError, match="expected input of shape"):
        SRResNet(num_features=4, num_blocks=1)(torch.rand(1, 1, 8, 8))


# ----------------------------------------------------------------------------- RRDBNet


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_output_shape(scale):
    net = RRDBNet(num_features=8, num_blocks=1, growth=4, scale=scale)
    assert net(torch.rand(2, 3, 8, 12)).shape == (2, 3, 8 * scale, 12 * scale)
    assert net.conv_first.in_channels == 3 * (4 // scale) ** 2


def test_rrdbnet_default_parameter_count_is_esrgan():
    assert count_default(RRDBNet) == 16_697_987  # ESRGAN (23 RRDBs, nf 64, gc 32)


def test_rrdbnet_key_layout_is_esrgan():
    keys = set(RRDBNet(num_features=8, num_blocks=2, growth=4).state_dict())
    assert "RRDB_trunk.1.RDB3.conv5.weight" in keys
    assert {"trunk_conv.bias", "upconv1.weight", "upconv2.weight", "HRconv.weight", "conv_last.bias"} <= keys
    assert len(keys) == 2 * (6 + 2 * 3 * 5)  # weight + bias of 6 outer convs and 30 dense-block convs


def test_rrdbnet_rejects_sizes_not_divisible_by_unshuffle():
    with pytest.raises(ValueError, match="divisible by 2"):
        RRDBNet(num_features=8, num_blocks=1, growth=4, scale=2)(torch.rand(1, 3, 7, 8))


# ----------------------------------------------------------------------------- discriminator


@pytest.mark.parametrize(("size", "final"), [(296, 9), (128, 4), (64, 2)])
def test_discriminator_sizes(size, final):
    net = VGGDiscriminator(num_features=4, input_size=size)
    assert net.linear1.in_features == 32 * final * final
    assert net(torch.rand(2, 3, size, size)).shape == (2, 1)


def test_discriminator_default_keys_and_count():
    with torch.device("meta"):
        net = VGGDiscriminator()
    keys = set(net.state_dict())
    assert {"conv0_0.weight", "conv0_1.weight", "bn0_1.running_mean", "conv4_1.weight", "bn4_1.weight"} <= keys
    assert {"linear1.weight", "linear2.bias"} <= keys
    assert net.linear1.in_features == 512 * 9 * 9
    assert count(net) == 17_830_281


def test_discriminator_rejects_other_sizes():
    net = VGGDiscriminator(num_features=4, input_size=64)
    with pytest.raises(ValueError, match="VGGDiscriminator"):
        net(torch.rand(1, 3, 128, 128))
    with pytest.raises(ValueError, match="input_size"):
        VGGDiscriminator(input_size=16)


# ----------------------------------------------------------------------------- Ranker

TABLE2_K = {"vgg8": 7_069, "vgg12": 13_734, "vgg16": 19_194}


@pytest.mark.parametrize("variant", sorted(RANKER_VARIANTS))
def test_ranker_parameter_counts_match_table2(variant):
    n = count_default(Ranker, variant)
    print(f"Ranker {variant}: {n:,} parameters (Table 2: {TABLE2_K[variant]:,}K)")
    assert abs(n / 1000 - TABLE2_K[variant]) / TABLE2_K[variant] < 0.02
    assert abs(n / 1000 - TABLE2_K[variant]) < 1.0  # in fact within 1K of the table


def test_ranker_vgg12_is_exactly_13734k():
    assert count_default(Ranker, "vgg12") // 1000 == 13_734


def test_ranker_vgg12_key_layout():
    net = Ranker("vgg12")
    convs = {f"conv{i}_{j}.weight" for i in range(5) for j in (0, 1)}
    bns = {f"bn{i}_{j}.running_var" for i in range(5) for j in (0, 1)} - {"bn0_0.running_var"}
    keys = set(net.state_dict())
    assert convs <= keys and bns <= keys and "bn0_0.weight" not in keys
    assert {"classifier.0.weight", "classifier.2.bias"} <= keys
    widths = [net.get_submodule(f"conv{i}_{j}").out_channels for i in range(5) for j in (0, 1)]
    assert widths == [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    strides = [net.get_submodule(f"conv{i}_{j}").stride[0] for i in range(5) for j in (0, 1)]
    assert strides == [1, 2] * 5


@pytest.mark.parametrize("variant", sorted(RANKER_VARIANTS))
def test_ranker_scores_shape_and_any_size(variant):
    net = Ranker(variant, num_features=4).eval()
    assert net(torch.rand(3, 3, 40, 56)).shape == (3,)


def test_ranker_body_reaches_9x9_at_296():
    net = Ranker("vgg12", num_features=2)
    from ranksrgan.nets.ranker import vgg_body_forward

    assert vgg_body_forward(net, net.layers, torch.rand(1, 3, 296, 296)).shape == (1, 16, 9, 9)


def test_ranker_freeze_pins_eval_mode():
    net = Ranker(num_features=4)
    assert net.train().training
    net.freeze()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training and not net.bn0_1.training
    parent = torch.nn.Sequential(net)
    parent.train()
    assert not net.training


def test_ranker_frozen_batchnorm_stats_do_not_drift():
    net = Ranker(num_features=4).freeze()
    before = net.bn1_0.running_mean.clone()
    net.train()
    net(torch.rand(2, 3, 32, 32) * 5)
    assert torch.equal(before, net.bn1_0.running_mean)


def test_ranker_rejects_bad_input():
    with pytest.raises(ValueError, match="variant"):
        Ranker("vgg19")
    with pytest.raises(ValueError, match="H, W >= 32"):
        Ranker(num_features=4)(torch.rand(1, 3, 16, 64))


def test_ranker_he_init():
    net = Ranker()
    fan_in = 512 * 9
    std = net.conv4_0.weight.std().item()
    expected = (2 / (1 + 0.2**2) / fan_in) ** 0.5
    assert abs(std / expected - 1) < 0.05
    assert torch.all(net.bn2_0.weight == 1) and torch.all(net.conv2_0.bias == 0)


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    "net",
    [
        SRResNet(num_features=4, num_blocks=1, scale=3),
        RRDBNet(num_features=4, num_blocks=1, growth=2, scale=2),
        Ranker("vgg8", num_features=4, conv_bias=False),
        VGGDiscriminator(num_features=4, input_size=64),
    ],
)
def test_net_spec_round_trip(net):
    spec = net_spec(net)
    assert spec["name"] in NETS
    rebuilt = build_net(spec)
    assert type(rebuilt) is type(net)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}


def test_build_net_rejects_unknown():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_net({"name": "EDSR", "kwargs": {}})
    with pytest.raises(ValueError, match="bad arguments"):
        build_net({"name": "SRResNet", "kwargs": {"nf": 3}})


# ----------------------------------------------------------------------------- VGG features


def test_vgg_features_match_torchvision_layout():
    from torchvision.models.vgg import cfgs, make_layers

    for use_bn in (False, True):
        ours = VGGFeatureExtractor("relu5_4", use_bn=use_bn, pretrained=False).features
        theirs = make_layers(cfgs["E"], batch_norm=use_bn)
        ours_shapes = {k: v.shape for k, v in ours.state_dict().items()}
        theirs_shapes = {k: v.shape for k, v in theirs.state_dict().items() if k in ours_shapes}
        assert ours_shapes == theirs_shapes
        assert [type(m) for m in ours] == [type(m) for m in list(theirs)[: len(ours)]]


def test_vgg_default_is_conv5_4_before_relu():
    net = VGGFeatureExtractor(pretrained=False)
    assert isinstance(net.features[-1], torch.nn.Conv2d) and len(net.features) == 35
    out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 512, 2, 2)
    relu = VGGFeatureExtractor("conv5_4", pretrained=False, before_relu=False)
    assert isinstance(relu.features[-1], torch.nn.ReLU) and len(relu.features) == 36


def test_vgg_layer_names_and_bn():
    assert len(VGGFeatureExtractor("conv2_2", pretrained=False).features) == 8
    assert len(VGGFeatureExtractor("relu2_2", pretrained=False).features) == 9
    bn = VGGFeatureExtractor("conv5_4", use_bn=True, pretrained=False)
    assert isinstance(bn.features[-1], torch.nn.BatchNorm2d)
    with pytest.raises(ValueError, match="unknown layer"):
        VGGFeatureExtractor("conv2_3", pretrained=False)


def test_vgg_is_frozen_eval_and_normalises_input():
    net = VGGFeatureExtractor("conv1_1", pretrained=False)
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training
    x = torch.rand(1, 3, 8, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    conv = net.features[0]
    torch.testing.assert_close(net(x), F.conv2d((x - mean) / std, conv.weight, conv.bias, padding=1))
    raw = VGGFeatureExtractor("conv1_1", pretrained=False, use_input_norm=False)
    raw.features.load_state_dict(net.features.state_dict())
    torch.testing.assert_close(raw(x), F.conv2d(x, conv.weight, conv.bias, padding=1))


def test_vgg_pretrained_offline_gives_clear_error(monkeypatch, tmp_path):
    from torchvision.models._api import WeightsEnum

    def offline(self, *args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(RuntimeError, match="could not be downloaded.*pretrained=False.*cache"):
        VGGFeatureExtractor(pretrained=True)


# ---------------------------------------------------------------------- SRResNet image skip


def test_srresnet_image_skip_is_off_by_default_and_keeps_the_released_spec():
    net = SRResNet(num_features=8, num_blocks=1, scale=4)
    assert net.image_skip is None and "image_skip" not in net.config
    with pytest.raises(ValueError, match="image_skip"):
        SRResNet(num_features=8, num_blocks=1, image_skip="nearest")


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_srresnet_image_skip_adds_the_interpolated_input(mode):
    torch.manual_seed(0)
    net = SRResNet(num_features=8, num_blocks=1, scale=4, image_skip=mode)
    assert net.config["image_skip"] == mode
    x = torch.rand(2, 3, 8, 8)
    up = F.interpolate(x, scale_factor=4, mode=mode, align_corners=False)
    plain = SRResNet(num_features=8, num_blocks=1, scale=4)
    plain.load_state_dict(net.state_dict())  # same weights, no skip: the difference is the skip
    torch.testing.assert_close(net(x), plain(x) + up)
    # Same state-dict keys as the authors' network (the skip has no weights).
    assert set(net.state_dict()) == set(plain.state_dict())


def test_srresnet_image_skip_residual_stays_alive_under_adam():
    """With the skip, 0.1x init everywhere left every HRconv ReLU dead after a few Adam steps."""
    torch.manual_seed(0)
    net = SRResNet(num_features=8, num_blocks=2, scale=4, image_skip="bicubic")
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    hr = torch.rand(4, 3, 32, 32)
    lr = F.avg_pool2d(hr, 4)
    for _ in range(30):
        loss = F.l1_loss(net(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    feats = {}
    net.HRconv.register_forward_hook(lambda m, i, o: feats.__setitem__("hr", o))
    net(lr)
    assert (feats["hr"] > 0).float().mean() > 0.05
