"""The training engine: loop, optimiser and schedule, EMA, checkpoints, logging, distributed helpers."""
