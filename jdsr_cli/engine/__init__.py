"""Inference engine: device and precision choice, tiling with blending, OOM recovery, TTA."""
