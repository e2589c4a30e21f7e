import torch
from torch import nn

from streamden.train.colour_check import STRONG_COLOURS, flat_window_bias, worst_colour_shift


class Constant(nn.Module):
    """A 'network' whose output is one colour (0-255) whatever it is given."""

    def __init__(self, rgb: tuple[float, float, float]):
        super().__init__()
        self.rgb = torch.tensor(rgb) / 255

    def forward(self, frames: torch.Tensor, noise_map: torch.Tensor) -> torch.Tensor:
        return self.rgb.view(1, 3, 1, 1).expand(frames.shape[0], 3, *frames.shape[-2:])


def test_flat_window_bias_is_the_mean_error_per_channel_in_levels():
    bias = flat_window_bias(Constant((130, 128, 122)), (128, 128, 128))
    assert torch.allclose(bias, torch.tensor([2.0, 0.0, -6.0]), atol=1e-3)


def test_worst_colour_shift_is_the_largest_over_the_strong_colours():
    # mid-grey against (250, 240, 20): 122 levels in red, the largest of every window and channel
    assert abs(worst_colour_shift(Constant((128, 128, 128))) - 122.0) < 1e-3
    yellow = STRONG_COLOURS[-1]
    assert worst_colour_shift(Constant(yellow), colours=(yellow,)) < 1e-3
