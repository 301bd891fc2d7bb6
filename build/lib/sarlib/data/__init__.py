"""Datasets (one registry, one reader per on-disk format), their transforms, samplers, and the embedded synthetic sets."""
