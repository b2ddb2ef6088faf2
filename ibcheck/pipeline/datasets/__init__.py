"""Data shipped with ibcheck: the built-in MNIST subset (see mnist10k.json for its provenance)."""
