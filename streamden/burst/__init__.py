"""Night-mode bursts: align many noisy hand-held shots to one and fuse them."""
