"""TrainConfig: the typed training recipe, loaded from YAML with :func:`streamden.config.load_config`.

Paths in a config file are relative to the current directory (run from the repo root:
``../shared/data/train``).

>>> from streamden.config import build
>>> build(TrainConfig, {"data": {"patch": 64}}).data.patch
64
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import AlignConfig
from ..errors import ConfigError


@dataclass
class DataConfig:
    """Where clips and stills come from and how samples are cut."""

    videos: list[str] = field(default_factory=list)       # folders of frames, folders of clip folders, or video files
    stills: list[str] = field(default_factory=list)       # image files, or folders searched recursively
    val_videos: list[str] = field(default_factory=list)   # held-out clips for validation
    patch: int = 96
    frames: int = 5
    still_fraction: float = 0.4        # share of samples made from stills with synthetic motion
    max_long_side: int = 0             # 0 keeps the full resolution; else downscale on load
    max_frames_per_clip: int = 0       # 0 keeps all frames
    flips: bool = True
    rot90: bool = True
    reverse: bool = True               # temporal reversal
    invert: float = 0.0                # share of samples turned photometrically (1 - x): bright content as
                                       # common as dark; exact for signal-independent noise clipped at 0 and 1
    channel_shuffle: bool = False      # random RGB permutation per sample (exact for per-channel i.i.d. noise)
    colour: float = 0.0                # share of samples given strong colours: chroma x1-3, a colour cast, no clipping
                                       # (data.colour_cast), before the noise
    colour_gain: float = 2.0           # colour: each channel's gain is log-uniform in [1 / colour_gain, colour_gain]
    colour_target: float = 0.0         # share of the colour samples brought to a random mean colour instead
                                       # (deep colours: one channel near 0, another near 1; data.colour_cast)
    workers: int = 0                   # processes that make batches ahead (train.batches); 0: the training
                                       # process makes its own (two CPU cores); on a GPU, most of the cores


@dataclass
class MotionConfig:
    """Synthetic hand-held motion for stills: a random walk of small affine steps per frame."""

    max_shift: float = 2.0             # pixels per step (uniform in +-max_shift)
    max_rotation: float = 0.5          # degrees per step
    max_zoom: float = 0.01             # relative scale change per step


@dataclass
class NoiseConfig:
    """Noise synthesised on the training device (see :mod:`streamden.noise.synth`)."""

    model: str = "gaussian"            # gaussian | poisson_gaussian | jpeg | camera | compressed | mix
    sigma_min: float = 5.0             # 0-255 scale
    sigma_max: float = 55.0
    sigma_sampling: str = "uniform"    # uniform | log (log-uniform: as many samples in 5-15 as in 15-45)
    clip: bool = True                  # clip noisy frames to [0, 1], as 8-bit video carries them
    gain_min: float = 0.002            # poisson_gaussian: signal-dependent variance a*x (x in [0,1])
    gain_max: float = 0.02
    jpeg_quality_min: int = 20         # jpeg (and compressed with codec jpeg): re-encode quality range
    jpeg_quality_max: int = 90
    shot_min: float = 0.0005           # camera: shot-noise gain in linear light, log-uniform (the read noise
    shot_max: float = 0.012            # follows Brooks et al.'s fit, streamden.noise.degrade.shot_to_read)
    codecs: list[str] = field(default_factory=lambda: ["x264", "jpeg"])   # compressed: one drawn per window
    crf_min: int = 18                  # compressed with x264/x265: CRF range (uniform)
    crf_max: int = 30
    mix: list[str] = field(default_factory=lambda: ["gaussian", "camera", "compressed", "camera+compressed"])
                                       # mix: one of these per window, uniformly
    # The noise map of camera and compressed windows is the effective level of the centre frame
    # (std(noisy - clean)), the level the blind estimate measures at inference.


@dataclass
class OptimConfig:
    """Adam with step or cosine decay; the learning rate is a pure function of the step (resume-safe)."""

    lr: float = 1e-3
    schedule: str = "step"             # step (milestones, gamma) | cosine (lr -> lr_min at `steps`)
    milestones: list[int] = field(default_factory=lambda: [3000, 3600])
    gamma: float = 0.1
    warmup: int = 0                    # linear warm-up steps (both schedules)
    lr_min: float = 0.0                # cosine: the final learning rate
    weight_decay: float = 0.0
    grad_clip: float = 1.0             # max global grad norm, 0 disables
    loss: str = "mse_mean"             # mse_mean | mse_sum (sum over the batch / 2, as FastDVDnet) |
                                       # mse_rel (each sample's MSE / its noise level squared)
    dc_weight: float = 0.0             # > 0: adds this many times the MSE of dc_block-pixel block means
    dc_block: int = 16                 #   (a colour shift over flat areas), weighed as `loss` says


@dataclass
class TrainConfig:
    """The whole training recipe."""

    name: str = "fastdvdnet_gaussian"
    work_dir: str = "runs/fastdvdnet_gaussian"
    architecture: str = "fastdvdnet"
    channels: int = 0                  # fastdvdnet: channels of the U-Nets' first level (0: init's width, or
                                       # the published 32); wider than init's widens it, same output at step 0
    seed: int = 0
    device: str = "auto"               # auto | cpu | cuda
    threads: int = 0                   # torch.set_num_threads; 0 leaves torch's default
    batch: int = 16
    steps: int = 4000
    amp: bool = True                   # autocast: fp16/bf16 on CUDA, bf16 on CPU when cpu_bf16
    cpu_bf16: bool = False
    channels_last: bool = True         # NHWC: fwd+bwd 16 % faster on the CPU (0.91 against 1.09 s, batch 8)
    log_every: int = 25
    val_every: int = 250
    val_frames: int = 3                # output frames per val clip
    val_crop: int = 256
    val_sigma: float = 30.0
    val_degradations: list[str] = field(default_factory=list)  # realistic validation instead of Gaussian
                                       # val_sigma: labels such as "compressed s15 x264 crf23", "camera
                                       # iso3200" (streamden eval's), the map at the blind estimate
    val_colour_limit: float = 0.0      # >0: a check is chosen as the best only if no flat strongly coloured
                                       # window shifts by this many levels (streamden.train.colour_check)
    val_keep: bool = False             # also save each validated weight average as val_<step>.safetensors
    checkpoint_every: int = 250
    ema: float = 0.0                   # >0: decay of an exponential moving average of the weights (and
                                       # BatchNorm statistics); validation and exported weights use it
    bn_freeze_after: int = -1          # >=0: from this step on, BatchNorm uses and keeps its running statistics
    bn_recalibrate: int = 0            # batches to re-estimate BatchNorm statistics of the exported weights (0: off)
    output: str = ""                   # final weights path; "" -> <work_dir>/final.safetensors
    init: str = ""                     # start from these weights (registry name or .safetensors); "" = random
    data: DataConfig = field(default_factory=DataConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    align: AlignConfig = field(default_factory=AlignConfig)   # mode flow: neighbours warped onto the centre, as at inference
    optim: OptimConfig = field(default_factory=OptimConfig)

    @property
    def val_noise(self) -> str:
        """What validation adds to its clips, in words: the labels of ``val_degradations``, or
        ``gaussian s<val_sigma>``.

        >>> TrainConfig(val_sigma=15).val_noise, TrainConfig(val_degradations=["camera iso800"]).val_noise
        ('gaussian s15', 'camera iso800')
        """
        return ", ".join(self.val_degradations) or f"gaussian s{self.val_sigma:g}"

    def __post_init__(self) -> None:
        from ..noise.degrade import parse_degradation

        for label in self.val_degradations:
            try:
                parse_degradation(label)
            except ValueError as exc:
                raise ConfigError(f"config key 'val_degradations': {exc}") from None
        if self.channels and (self.architecture != "fastdvdnet" or not 4 <= self.channels <= 256):
            raise ConfigError(f"config key 'channels': {self.channels} (a FastDVDnet width from 4 to 256; 0: its own)")
        if self.data.workers < 0:
            raise ConfigError(f"config key 'data.workers': {self.data.workers} is negative (0: no worker process)")
