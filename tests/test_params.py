import pytest

from dglcleaner.errors import ParameterError
from dglcleaner.params import Param, parse_assignments, resolve_params

SPEC = (
    Param("ratio", float, 0.05, low=0.0, high=1.0, low_open=True, high_open=True),
    Param("epochs", int, 10, low=1),
    Param("mode", str, "er", choices=("er", "ws")),
    Param("flag", bool, False),
)


def test_defaults_and_coercion():
    out = resolve_params(SPEC, {"ratio": "0.1", "epochs": "3", "mode": "WS", "flag": "yes"})
    assert out == {"ratio": 0.1, "epochs": 3, "mode": "ws", "flag": True}
    assert resolve_params(SPEC) == {"ratio": 0.05, "epochs": 10, "mode": "er", "flag": False}


@pytest.mark.parametrize("key,value", [("ratio", 0.0), ("ratio", 1.0), ("ratio", "x"),
                                       ("epochs", 0), ("epochs", 2.5), ("mode", "ba"),
                                       ("flag", "maybe"), ("epochs", True)])
def test_out_of_range_raises_one_line(key, value):
    with pytest.raises(ParameterError) as exc:
        resolve_params(SPEC, {key: value})
    assert "\n" not in str(exc.value) and key in str(exc.value)


def test_unknown_key_suggests():
    with pytest.raises(ParameterError, match="Did you mean 'epochs'"):
        resolve_params(SPEC, {"epoch": 3}, owner="x")


def test_parse_assignments():
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ParameterError):
        parse_assignments(["novalue"])
