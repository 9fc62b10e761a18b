"""The image commands as a library (upscale, downscale, evaluation and the batch they share).

The CLI is a thin layer over it: parse, call, render."""
