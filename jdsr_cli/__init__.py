"""jdsr: super-resolution from the command line (upscale, downscale, train, distill)."""

__version__ = "0.1.0"
