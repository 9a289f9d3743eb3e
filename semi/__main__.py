"""`python -m semi ...` (the form torchrun needs) is the same as the `semi` console script."""

from semi.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
