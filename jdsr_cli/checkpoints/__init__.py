"""Checkpoints: the safetensors + config.json format, legacy .pth loading, the manifest and the Hub."""
