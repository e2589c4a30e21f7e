"""Noise models and noise-level estimation."""
from .estimate import NoiseEstimate, NoiseModel, SigmaTracker, estimate_level, estimate_noise, estimate_sigma
