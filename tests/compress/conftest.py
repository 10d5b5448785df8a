import pytest
import torch
from torch import nn


def _random_bn(model):
    """Give every BatchNorm2d random affine parameters and statistics (eval mode): a pruned channel
    then changes the output, so removal and masking are compared on a model that uses every channel."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.rand(m.num_features, generator=g) * 0.4 - 0.2
            m.running_mean = torch.rand(m.num_features, generator=g) * 0.2 - 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
    return model.eval()


@pytest.fixture(scope="session")
def random_bn():
    return _random_bn
