#!/bin/sh
# Say in one line where dlgpu will compute (the GPU, or the CPU and why: no GPU, no driver, no CuPy),
# then run the container's command.
set -e
python -c 'import logging; logging.basicConfig(level=logging.INFO, format="%(message)s"); from dlgpu.backend import device; device.resolve("auto")'
exec "$@"
