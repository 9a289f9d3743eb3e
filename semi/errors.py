"""User-facing errors: raised for bad configs, data and checkpoints, printed by the CLI without a traceback."""


class SemiError(Exception):
    """An error the user can fix (bad config, missing data, bad checkpoint). The CLI prints it and exits 2."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class ConfigError(SemiError):
    """One or more problems in a configuration; the message lists every one with its key path."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class DataError(SemiError):
    """Missing, malformed or inconsistent data."""


class CheckpointError(SemiError):
    """A checkpoint that cannot be read or does not fit the current run."""
