"""File I/O: raw frames, products, names."""
