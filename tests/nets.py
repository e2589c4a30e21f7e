"""Networks for tests: random weights with non-trivial BatchNorm, so equivalence tests bite."""
import torch

from streamden.models.fastdvdnet import FastDVDnet


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BN statistics and affine parameters, so eval-mode BN is not an identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def random_fastdvdnet(seed: int = 0, bias: bool = False) -> FastDVDnet:
    """A FastDVDnet with seeded random weights and BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    return randomise_batchnorm(FastDVDnet(bias=bias), seed + 1).eval()
