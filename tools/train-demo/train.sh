#!/bin/sh
# Retrains the demo model from a seed and exports it to public/models/flux-demo (see README.md here).
# OMP_WAIT_POLICY=passive: on a shared 2-core machine, spinning OpenMP workers make every step several times slower.
cd "$(dirname "$0")/../.." && OMP_WAIT_POLICY=passive exec /usr/bin/python3 tools/train-demo/train.py "$@"
