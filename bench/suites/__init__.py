"""Benchmark suites: ops (primitives), models (train step and predict), e2e (one epoch of fit)."""

from bench.suites import e2e, models, ops

SUITES = {"ops": ops, "models": models, "e2e": e2e}
