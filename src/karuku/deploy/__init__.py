"""Deployment: ONNX export with parity checks, ONNX Runtime benchmarks, microcontroller C."""
