"""Image operations on tensors: MATLAB-compatible resize, colour conversion, quality metrics."""
