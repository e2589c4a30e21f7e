"""What a network costs: multiply-adds per output pixel on the streaming path."""
from __future__ import annotations

import torch
from torch import nn


def multiply_adds_per_pixel(model: nn.Module, height: int = 64, width: int = 64) -> float:
    """Multiply-adds of the convolutions per output pixel of one streaming step (one block
    for :class:`LiteDVD`; FastDVDnet's two blocks for the cached path), counted with hooks on
    a ``height`` x ``width`` input.

    >>> from streamden.models.lite import LiteDVD
    >>> round(multiply_adds_per_pixel(LiteDVD()))
    12544
    """
    total = 0

    def count(module: nn.Conv2d | nn.ConvTranspose2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        taps = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):   # every input value scatters to taps x outputs
            total += inputs[0][0].numel() * module.out_channels // module.groups * taps
        else:                                        # every output value gathers taps x inputs
            total += output[0].numel() * module.in_channels // module.groups * taps

    convs = (nn.Conv2d, nn.ConvTranspose2d)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, convs)]
    param = next(model.parameters())
    training = model.training
    model.eval()   # a counting pass must not move BatchNorm statistics
    try:
        with torch.no_grad():
            triplet = torch.rand(1, 3, 3, height, width, device=param.device, dtype=param.dtype)
            noise = torch.full((1, 1, height, width), 0.1, device=param.device, dtype=param.dtype)
            middle = model.stage1(triplet, noise)
            if not getattr(model, "single_stage", False):
                model.stage2(middle.unsqueeze(1).expand(-1, 3, -1, -1, -1), noise)
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return total / (height * width)
