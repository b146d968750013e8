"""Stage adapters: a thin bridge from a recipe stage to a technique's public API."""
