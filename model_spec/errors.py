"""The one error type of model_spec."""


class SpecError(ValueError):
    """What a version directory declares is unusable; str() is one line: file: field: problem."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: {field}: {problem}")
        self.file = file
        self.field = field
        self.problem = problem
