"""Quantization (filled in below)."""
