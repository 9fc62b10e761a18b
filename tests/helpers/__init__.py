"""Shared test helpers: a local Hub emulator, tiny networks, image and video file makers, reference forwards."""
