"""Image input/output: decoding, normalisation of modes and depths, metadata, atomic writes."""
