"""The part of Azure Pipelines' expression language azure-pipelines.yml uses, evaluated as
Microsoft documents it (learn.microsoft.com/azure/devops/pipelines/process/expressions):
`${{ parameters.x }}` replaced at compile time, then conditions and `$[ ]` runtime
expressions with and/or/not/eq/ne, the status functions, literals, `variables.x` and
`variables['x']`. Strings compare ignoring case; `eq` converts its right side to the left
side's type. Anything else raises, so a new construct needs support here first."""

import re
from collections.abc import Callable

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z_][\w.]*)|(?P<punct>[(),\[\]]))"
)
COMPILE_TIME = re.compile(r"\$\{\{\s*parameters\.(\w+)\s*\}\}")


def as_text(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return "" if value is None else str(value)


def compile_time(text: str, parameters: dict[str, object]) -> str:
    """`${{ parameters.name }}` replaced by the parameter as text (a boolean is True/False)."""
    if "${{" in COMPILE_TIME.sub("", text):
        raise ValueError(f"unsupported template expression in {text!r}")
    return COMPILE_TIME.sub(lambda m: as_text(parameters[m.group(1)]), text)


def equal(left: object, right: object) -> bool:
    if isinstance(left, bool):
        return left == (right if isinstance(right, bool) else bool(as_text(right)))
    return as_text(left).casefold() == as_text(right).casefold()


FUNCTIONS: dict[str, Callable[..., bool]] = {
    "and": lambda *args: all(args),
    "or": lambda *args: any(args),
    "not": lambda arg: not arg,
    "eq": equal,
    "ne": lambda left, right: not equal(left, right),
}


def evaluate(expression: str, variables: dict[str, str], succeeded: bool = True) -> object:
    """A condition's value; `succeeded` is what succeeded() answers (the steps or stages it
    depends on all succeeded)."""
    tokens = list(TOKEN.finditer(expression.strip()))
    if "".join(m.group(0) for m in tokens).strip() != expression.strip():
        raise ValueError(f"cannot read {expression!r}")
    names = {name.casefold(): value for name, value in variables.items()}
    status = {"succeeded": succeeded, "succeededorfailed": True, "always": True}
    position = 0

    def take() -> re.Match:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def value() -> object:
        token = take()
        if token.group("string"):
            return token.group("string")[1:-1].replace("''", "'")
        word = token.group("word")
        if word is None:
            raise ValueError(f"unexpected {token.group(0)!r} in {expression!r}")
        if word.casefold() in ("true", "false"):
            return word.casefold() == "true"
        if word.startswith("variables."):
            return names.get(word.removeprefix("variables.").casefold())
        if word == "variables":
            assert take().group("punct") == "["
            name = value()
            assert take().group("punct") == "]"
            return names.get(str(name).casefold())
        assert take().group("punct") == "(", f"{word} is not a function call"
        args = []
        while tokens[position].group("punct") != ")":
            args.append(value())
            if tokens[position].group("punct") == ",":
                take()
        take()
        if word.casefold() in status:
            return status[word.casefold()]
        return FUNCTIONS[word.casefold()](*args)

    result = value()
    if position != len(tokens):
        raise ValueError(f"trailing text in {expression!r}")
    return result


def variable_value(value: str, variables: dict[str, str]) -> str:
    """A variable's value: a `$[ ]` runtime expression evaluated (as True/False text)."""
    match = re.fullmatch(r"\s*\$\[(.*)\]\s*", value, re.DOTALL)
    return as_text(evaluate(match.group(1), variables)) if match else value
