"""The expression evaluator the gate tests rely on agrees with Microsoft's documented rules."""

import pytest

from tests.pipeline.expressions import compile_time, evaluate, variable_value

VARIABLES = {"Build.Reason": "Manual", "releasing": "True"}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("eq('True', 'true')", True),  # strings compare ignoring case
        ("eq(variables['build.reason'], 'Manual')", True),  # names too
        ("eq(variables.releasing, 'true')", True),
        ("ne(variables['Build.Reason'], 'Schedule')", True),
        ("eq(variables['Build.SourceBranch'], '')", True),  # a missing variable is empty
        ("eq('it''s', 'IT''S')", True),  # '' escapes a quote
        ("or(false, eq(variables.releasing, 'False'))", False),
        ("not(eq(variables.releasing, True))", False),  # the right side becomes 'True'
    ],
)
def test_documented_semantics(expression, value):
    assert evaluate(expression, VARIABLES) is value


def test_status_functions_follow_what_they_depend_on():
    assert evaluate("and(succeeded(), true)", {}, succeeded=True) is True
    assert evaluate("and(succeeded(), true)", {}, succeeded=False) is False
    assert evaluate("succeededOrFailed()", {}, succeeded=False) is True


def test_runtime_variables_hold_true_or_false_and_parameters_are_replaced_first():
    text = compile_time("$[eq('${{ parameters.release }}', 'true')]", {"release": True})

    assert text == "$[eq('True', 'true')]"
    assert variable_value(text, {}) == "True"
    assert variable_value("plain", {}) == "plain"


def test_what_it_does_not_know_is_an_error_not_a_guess():
    with pytest.raises(KeyError):
        evaluate("contains('abc', 'b')", {})
    with pytest.raises(ValueError):
        evaluate("eq(1, 1)", {})  # no number is used, so none is read
    with pytest.raises(ValueError):
        compile_time("${{ variables.x }}", {})
