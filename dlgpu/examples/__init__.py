"""Runnable examples: ``python -m dlgpu.examples.mnist``."""
