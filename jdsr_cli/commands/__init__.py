"""The image commands as a library (upscale, downscale, evaluation, the batch they share); the CLI is a thin layer over it."""
