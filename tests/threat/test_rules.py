"""The condition language of threat rules (apps/threat/rules.py): what compiles, what it
decides, and that everything else is refused with a message a person can act on."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.threat.rules import MAX_DEPTH, MAX_LENGTH, ConditionError, compile_condition
from apps.threat.signals import SIGNALS


@pytest.mark.parametrize(
    ("text", "signals", "expected"),
    [
        ("not success and accounts_ip_1h >= 10", {"accounts_ip_1h": 10}, True),
        ("not success and accounts_ip_1h >= 10", {"accounts_ip_1h": 9}, False),
        ("not success and accounts_ip_1h >= 10", {"success": True, "accounts_ip_1h": 50}, False),
        ("success or new_device", {"new_device": True}, True),
        ("1 <= failures_user_1h < 5", {"failures_user_1h": 4}, True),
        ("1 <= failures_user_1h < 5", {"failures_user_1h": 5}, False),
        ("country in ('KP', 'IR')", {"country": "IR"}, True),
        ("country not in ['FR', 'DE']", {"country": "FR"}, False),
        ("country == 'FR'", {"country": "FR"}, True),
        ("country != ''", {}, False),
        ("asn in (16509, 14618)", {"asn": 16509}, True),
        ("travel_kmh > 1000.5", {"travel_kmh": 1200.0}, True),
        ("travel_kmh > 1000", {"travel_kmh": 999.9}, False),
        ("score >= -1", {}, True),
        ("travel_kmh > -1.5 and distance_km >= -0", {}, True),
        ("-2.5 < score", {"score": -2}, True),
        ("impossible_travel == True", {"impossible_travel": True}, True),
        ("headless_ua != False", {}, False),
        ("True", {}, True),
        ("not (success and known_person)", {"success": True}, True),
        ("((score >= 85))", {"score": 90}, True),
        # Written over several lines, as in the console's editor, with a comment.
        ("success\n  and score >= 60  # high enough\n", {"success": True, "score": 61}, True),
    ],
)
def test_condition_decides_on_the_signals(text, signals, expected) -> None:
    assert compile_condition(text)(signals) is expected


def test_a_missing_signal_reads_as_its_types_zero() -> None:
    assert compile_condition("not success and score == 0 and country == ''")({}) is True
    assert compile_condition("travel_kmh < 0.5 and hour_share == 0")({}) is True


def test_condition_names_the_signals_it_reads() -> None:
    condition = compile_condition("success and (score > 80 or country in ('KP',))")
    assert condition.signals == {"success", "score", "country"}
    assert condition.text == "success and (score > 80 or country in ('KP',))"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sucess", "line 1, col 1: unknown signal 'sucess'; did you mean 'success'?"),
        ("success and failures_usr_1h > 3", "col 13: unknown signal 'failures_usr_1h'; did you"),
        ("zzz", "unknown signal 'zzz'; the signals are listed in docs/threat.md"),
        ("score >=", "line 1, col 9: the condition ends too early"),
        ("success and (", "line 1, col 13: a parenthesis was never closed"),
        ("score = 80", "line 1, col 7: invalid syntax: compare with ==, not ="),
        ("success and\n  score >=\n", "line 3, col 1: the condition ends too early"),
        ("success and\n  scor > 1", "line 2, col 3: unknown signal 'scor'; did you mean 'score'"),
        ("", "the condition is empty"),
        ("   \n", "the condition is empty"),
        ("score", "score is a number, not a condition: compare it, e.g. `score >= 1`"),
        ("success and accounts_ip_1h", "'and' joins conditions, and accounts_ip_1h is a number"),
        ("not score", "'not' takes a condition, and score is a number"),
        ("country", "country is text, not a condition: compare it, e.g. `country == 'FR'`"),
        ("success == 1", "success is true/false and cannot be compared with a number: write"),
        ("1 < success", "success is true/false and cannot be compared with a number"),
        ("success > False", "'>' does not apply to true/false: use == or !="),
        ("country < 'M'", "'<' does not apply to text: use == or !="),
        ("country == 3", "country is text and 3 is a number: they cannot be compared"),
        ("score == '3'", "score is a number and '3' is text"),
        ("country in 'FR'", "right of 'in' goes a list of constants"),
        ("country in (1, 2)", "country is text and the list holds numbers"),
        ("score in ('a',)", "score is a number and the list holds strings"),
        ("country in ('FR', 1)", "a list holds only strings or only numbers, not both"),
        ("country in (asn,)", "a list holds only strings or only numbers"),
        ("country in ()", "the list is empty"),
        ("asn in (1,) == True", "'in' ends a comparison: put it in parentheses"),
        ("(1, 2)", "a list goes only right of `in`"),
        ("success is True", "'is' is not allowed: use == or !="),
        ("success is not True", "'is not' is not allowed"),
        ("None", "None is not allowed"),
        ("score > 1e999", "the number is out of range"),
        ("score > -country", "a sign (- or +) goes only before a number"),
        ("~score", "~ is not allowed"),
    ],
)
def test_error_says_what_is_wrong_and_where(text, message) -> None:
    with pytest.raises(ConditionError) as raised:
        compile_condition(text)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('id')", "function calls are not allowed"),
        ("len(country) > 1", "function calls are not allowed"),
        ("country.upper() == 'FR'", "function calls are not allowed"),
        ("().__class__", "attributes (x.y) are not allowed"),
        ("success.real", "attributes (x.y) are not allowed"),
        ("country[0] == 'F'", "subscripts (x[...]) are not allowed"),
        ("(lambda: True)", "lambdas are not allowed"),
        ("[x for x in (1, 2)]", "comprehensions are not allowed"),
        ("any(x for x in (1,))", "function calls are not allowed"),
        ("{k: 1 for k in 'ab'}", "comprehensions are not allowed"),
        ("(success := True)", "assignments (:=) are not allowed"),
        ("f'{country}' == 'FR'", "f-strings are not allowed"),
        ("score ** 2 > 10", "arithmetic"),
        ("score + 1 > 10", "arithmetic"),
        ("9 ** 9 ** 9 ** 9 > 1", "arithmetic"),
        ("success if score else True", "conditional expressions"),
        ("{1: 2}", "dictionaries are not allowed"),
        ("country in {'FR'}", "right of 'in' goes a list"),
        ("{'FR'}", "sets ({...}) are not allowed"),
        ("b'x' == country", "b'x' is not allowed"),
        ("... == score", "Ellipsis is not allowed"),
        ("(yield)", "yield is not allowed"),
        ("await success", "await is not allowed"),
        ("*success", "line 1"),
    ],
)
def test_only_the_whitelisted_nodes_compile(text, message) -> None:
    with pytest.raises(ConditionError) as raised:
        compile_condition(text)
    assert message in str(raised.value)


def test_a_condition_runs_without_builtins() -> None:
    condition = compile_condition("success")
    assert condition.evaluate.__globals__ == {"__builtins__": {}}


def test_length_is_bounded() -> None:
    longest = "score >= 1" + " " * (MAX_LENGTH - len("score >= 1"))
    assert compile_condition(longest)({"score": 1}) is True
    with pytest.raises(ConditionError, match=f"at most {MAX_LENGTH} are allowed"):
        compile_condition(longest + " ")


@pytest.mark.parametrize(
    "text",
    [
        "not " * 10_000 + "success",  # over the length bound
        "not " * 450 + "success",  # within it, nesting beyond MAX_DEPTH
        "(" * 1000 + "success" + ")" * 1000,
        "(" * 200 + "success" + ")" * 200,  # Python's parser stops at 200
        "(not " * 300 + "success" + ")" * 300,
        "-" * 1990 + "1 < (",
        "success and " * 160 + "(",
        "[" * 600 + "]" * 600,
    ],
)
def test_deep_nesting_is_an_error_not_a_crash(text) -> None:
    with pytest.raises(ConditionError):
        compile_condition(text)


def test_nesting_up_to_the_bound_compiles() -> None:
    deep = "not " * (MAX_DEPTH - 1) + "success"
    assert compile_condition(deep)({"success": True}) is ((MAX_DEPTH - 1) % 2 == 0)
    # Parentheses alone add no depth; a long chain of and/or is one level.
    assert compile_condition("(" * 150 + "success" + ")" * 150)({"success": True}) is True
    assert compile_condition(" and ".join(["success"] * 150))({"success": True}) is True
    assert compile_condition("-" * 1001 + "1 < score")({"score": 0}) is True  # -1 < 0


# --- generated inputs: any text compiles or raises ConditionError, never anything else -------

_TOKENS = [
    *SIGNALS,
    "and", "or", "not", "in", "not in", "is", "(", ")", "[", "]", ",", "==", "!=", "<", "<=",
    ">", ">=", "=", "+", "-", "*", "**", ".", ":=", "lambda", ":", "if", "else", "for",
    "True", "False", "None", "0", "1", "85", "-3", "2.5", "1e999", "'FR'", '"KP"', "f'x'",
    "#", "\n", "\\", "'", '"', "{", "}", "__import__", "x", "1_000", "0x1f", "\x00",
]  # fmt: skip

_token_text = st.lists(st.sampled_from(_TOKENS), max_size=40).map(" ".join)


def _compiles_or_refuses(text: str) -> None:
    refused: ConditionError | None = None
    try:
        condition = compile_condition(text)
    except ConditionError as error:
        refused = error
    if refused is not None:
        assert str(refused)  # refused, with something to read
        return
    # What compiles decides, on no signals and on signals of every kind, with a bool.
    assert condition({}) in (True, False)
    assert type(condition(_EVERY_SIGNAL_SET)) is bool


_EVERY_SIGNAL_SET = {
    name: {bool: True, int: 7, float: 2.5, str: "FR"}[signal.kind]
    for name, signal in SIGNALS.items()
}


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_any_text_compiles_or_raises_condition_error(text: str) -> None:
    _compiles_or_refuses(text)


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_token_text)
def test_any_sequence_of_tokens_compiles_or_raises_condition_error(text: str) -> None:
    _compiles_or_refuses(text)


@st.composite
def _conditions(draw: st.DrawFn, depth: int = 0) -> str:
    """Well-formed conditions, to check that what the grammar allows compiles and decides."""
    flags = [n for n, s in SIGNALS.items() if s.kind is bool]
    numbers = [n for n, s in SIGNALS.items() if s.kind in (int, float)]
    choice = draw(st.integers(0, 4 if depth < 4 else 1))
    if choice == 0:
        return draw(st.sampled_from(flags))
    if choice == 1:
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        number = draw(st.one_of(st.integers(-5, 200), st.floats(-5, 200, allow_nan=False)))
        return f"{draw(st.sampled_from(numbers))} {op} {number!r}"
    if choice == 2:
        return f"not ({draw(_conditions(depth + 1))})"
    word = "and" if choice == 3 else "or"
    return f"({draw(_conditions(depth + 1))}) {word} ({draw(_conditions(depth + 1))})"


@settings(max_examples=300, deadline=None)
@given(
    _conditions(),
    st.dictionaries(
        st.sampled_from(list(SIGNALS)),
        st.one_of(st.integers(-10, 300), st.floats(-10, 300, allow_nan=False)),
    ),
)
def test_well_formed_conditions_compile_and_match_python(text: str, numbers) -> None:
    signals = {
        name: (bool(int(value) % 2) if SIGNALS[name].kind is bool else value)
        for name, value in numbers.items()
        if SIGNALS[name].kind is not str
    }
    expected = eval(text, {"__builtins__": {}}, {n: _zero(n) for n in SIGNALS} | signals)  # noqa: S307
    assert compile_condition(text)(signals) is expected


def _zero(name: str) -> object:
    return SIGNALS[name].kind()
