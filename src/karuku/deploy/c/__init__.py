"""Microcontroller C from the integer-only model: generation, host and Cortex-M4 (QEMU) checks."""
