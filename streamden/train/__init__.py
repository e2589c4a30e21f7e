"""Training: datasets held in memory, synthetic motion for stills, the trainer and its config.

>>> from streamden.train import TrainConfig
>>> TrainConfig().data.patch
96
"""
from .config import DataConfig, MotionConfig, NoiseConfig, OptimConfig, TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "DataConfig", "MotionConfig", "NoiseConfig", "OptimConfig", "train"]
