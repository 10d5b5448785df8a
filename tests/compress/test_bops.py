"""BOPs / size accountant with hand-computed numbers."""

import pytest
from torch import nn

from edgefl.compress.bops import compression_summary, cost_report
from edgefl.compress.qmodules import quantize_model
from edgefl.models import build_model


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)  # 4x4 out: MACs = 16*2*1*9 = 288
        self.bn = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, stride=2, padding=1, bias=False)  # 2x2 out: 4*2*2*9 = 144
        self.fc = nn.Linear(8, 3)  # 24 MACs

    def forward(self, x):
        return self.fc(self.conv2(self.bn(self.conv(x))).flatten(1))


def _q(bits, a=None):
    return {
        "w": {"kind": "symmetric", "bits": bits},
        "a": None if a is None else {"kind": "range", "bits": a},
    }


def test_tiny_model_by_hand():
    fp = cost_report(Tiny(), (1, 4, 4))
    assert [layer.macs for layer in fp.layers] == [288, 144, 24]
    assert fp.bops == (288 + 144 + 24) * 1024
    m = quantize_model(Tiny(), {"conv2": _q(4, a=2)})
    own = cost_report(m, (1, 4, 4))  # PIC-PQ: own bits for weights and activations
    assert own.bops == 288 * 1024 + 144 * 16 + 24 * 1024
    inp = cost_report(m, (1, 4, 4), act_rule="input")  # actual input quantizer bits
    assert inp.bops == 288 * 1024 + 144 * 4 * 2 + 24 * 1024
    m2 = quantize_model(Tiny(), {"conv": _q(3), "conv2": _q(5)})
    prev = cost_report(m2, (1, 4, 4), act_rule="previous")  # GHOST: previous layer's bits, first input 32
    assert prev.bops == 288 * 3 * 32 + 144 * 5 * 3 + 24 * 32 * 5
    # size: conv 18 w * 3 bits, conv2 36 w * 5 bits, fc 24 w + 3 b at 32, BN 2*2 at 32
    assert own.size_bytes == pytest.approx((18 * 32 + 36 * 4 + 27 * 32 + 4 * 32) / 8)
    assert prev.size_bytes == pytest.approx((18 * 3 + 36 * 5 + 27 * 32 + 4 * 32) / 8)
    s = compression_summary(fp, own)
    assert s["bops_ratio"] == pytest.approx(fp.bops / own.bops)


def test_resnet56_cifar_full_precision_is_128_5_gbops():
    r = cost_report(build_model("resnet56", in_channels=3, num_classes=10), (3, 32, 32))
    conv = sum(layer.macs for layer in r.layers if layer.kind == "conv")
    assert conv == 125_485_056 and r.macs - conv == 640
    assert r.bops / 1e9 == pytest.approx(128.50, abs=0.005)


def test_resnet20_cifar_full_precision_is_41_52_gbops():
    r = cost_report(build_model("resnet20", in_channels=3, num_classes=10), (3, 32, 32))
    assert sum(layer.macs for layer in r.layers if layer.kind == "conv") == 40_550_400
    assert r.bops / 1e9 == pytest.approx(41.52, abs=0.005)


def test_uniform_bits_scale_bops_quadratically():
    m = build_model("resnet20", in_channels=1, num_classes=10)
    fp = cost_report(m, (1, 28, 28))
    names = [n for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d) and n != "conv1"]
    quantize_model(m, {n: _q(4) for n in names})
    q = cost_report(m, (1, 28, 28))
    quantized = sum(layer.macs for layer in fp.layers if layer.name in names)
    assert q.bops == fp.bops - quantized * 1024 + quantized * 16
