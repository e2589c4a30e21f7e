"""Noise models and noise-level estimation."""
from .estimate import SigmaTracker, estimate_sigma
