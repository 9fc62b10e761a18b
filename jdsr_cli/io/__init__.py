"""Image input/output: decoding (with decoder warnings), modes and depths, metadata, formats, animations, atomic writes,
and the checks on where a command will write."""
