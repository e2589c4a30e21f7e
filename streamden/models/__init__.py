"""The FastDVDnet network, its registry and weights, and streaming inference."""
from .fastdvdnet import WINDOW, FastDVDnet, crop_to, pad_to_multiple
from .import_original import import_fastdvdnet_checkpoint
from .registry import ModelCard, build_model, get_card, list_models, load_model, register
from .streaming import StreamingDenoiser, denoise_sequence, reflect_index
from .weights import load_weights, read_metadata, save_weights
