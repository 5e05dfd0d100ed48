"""semindex write side and shared ground: records, errors, manifest, walking, chunking, embedding."""

__version__ = "0.1.0"
