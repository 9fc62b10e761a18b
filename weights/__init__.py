"""Bundled checkpoints. Installed as the package ``jdsr_weights``; see ``manifest.json``."""
