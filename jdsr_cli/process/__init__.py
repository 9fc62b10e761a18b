"""This process: where it sits in a ``torchrun`` launch, how it stops on a signal, its share of the CPU and its
host memory allocator.

Commands, training and the CLI all stand on it; it imports nothing from them (nor torch at import time).
"""
