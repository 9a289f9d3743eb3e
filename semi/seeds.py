"""Seeds derived from integers, stable across processes, machines and Python versions (every layer may import it)."""

from __future__ import annotations


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (splitmix64 steps), stable across processes and Python versions."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x >> 1
