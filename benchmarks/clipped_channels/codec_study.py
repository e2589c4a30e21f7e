"""Camera noise through x264 CRF 23 on dark channels: which level each channel wants (issue 19).

After the codec the dark channel is no longer clipped (the clipped share falls from about 0.45
to 0.02-0.08), so the clipped-channel rule does not fire, yet that channel still wants 2.5-3x
the overall level. Per clip, colour and ISO: the estimate's overall level L, per-channel levels,
clipped shares and noisy means, each channel's best k in 1..3, auto and the per-channel
composite of the k runs (an oracle).

    python benchmarks/clipped_channels/codec_study.py     (about 3 min on two cores)
"""
import torch, numpy as np
from streamden.config import make_config
from streamden.engine import Engine
from streamden.evaluate import auto_denoise, read_clean
from streamden.noise.degrade import degrade, parse_degradation
from streamden.noise.estimate import estimate_noise
from streamden.train.data import colour_cast
torch.set_num_threads(1)
eng = Engine(make_config(None, device="cpu"))
KS = [1.0, 1.5, 2.0, 2.5, 3.0]
for clip, cast in [("../shared/data/val/videos/ta_sample4", None), ("../shared/data/train/videos/sam2_coffee", (0.05, 0.33, 0.85)), ("../shared/data/train/videos/sam2_coffee", (0.85, 0.5, 0.05)), ("../shared/data/train/videos/sam2_coffee", None)]:
    clean = read_clean(clip, 5, 96)
    if cast: clean = colour_cast(clean, 1.0, target=torch.tensor(cast))
    for iso in ("iso800", "iso3200", "iso12800"):
        spec = parse_degradation(f"camera+compressed {iso} x264 crf23")
        noisy = degrade(clean, spec, 7)
        e = estimate_noise(noisy[2])
        means = (noisy[2].mean((1, 2)) * 255).tolist()
        _, used = auto_denoise(eng, noisy); lv = torch.tensor([float(v) for v in used])
        rm = np.array([[float(((eng.denoise_clip(noisy, lv * k) - clean)[:, c] * 255).pow(2).mean()) for c in range(3)] for k in KS])
        kb = [KS[int(np.argmin(rm[:, c]))] for c in range(3)]
        ps = lambda m: 10 * np.log10(255**2 / m)
        print(clip.split('/')[-1], cast, iso, f"L {e.level:.1f} ch {[round(v,1) for v in e.channel_sigmas]} clip {[round(v,2) for v in e.clipped]} means {[round(m) for m in means]} kbest {kb} auto {ps(rm[0].mean()):.2f} comp {ps(rm.min(0).mean()):.2f}", flush=True)
