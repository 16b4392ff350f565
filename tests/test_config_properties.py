"""Property-based tests (hypothesis) of the config schema and the ``--set`` parser (issue 17).

For every key of :data:`meanfield.config.SCHEMA`, generated values that its type, choices or
range forbid are put into an otherwise valid config, once through the config file and once
through ``--set``; malformed ``--set`` items are generated too. Every one must exit 2 with the
key (or the ``--set`` item) named, without a traceback, writing nothing.
"""
import json
import math
import os
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from meanfield import config as C  # noqa: E402
from meanfield.cli import main  # noqa: E402
from helpers import tiny  # noqa: E402

KEYS = [(sec, key) for sec, fields in C.SCHEMA.items() for key in fields]

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
_ints = st.integers(min_value=-10**12, max_value=10**12)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
_nonfinite = st.sampled_from([math.nan, math.inf, -math.inf])
_lists = st.lists(st.one_of(_ints, _text), min_size=0, max_size=3)


def _wrong_type(f):
    """Values of a type the field never accepts."""
    return {
        "int": st.one_of(_text, st.booleans(), _floats.filter(lambda v: v != int(v)), _lists),
        "float": st.one_of(_text, st.booleans(), _lists, _nonfinite),
        "bool": st.one_of(_ints, _text, _floats),
        "str": st.one_of(_ints, _floats, st.booleans(), _lists),
        "int_list": st.one_of(_text, _ints, st.lists(_text, min_size=1, max_size=2),
                              st.lists(_floats.filter(lambda v: v != int(v)), min_size=1, max_size=2)),
        "float_list": st.one_of(_text, _ints, _floats, st.lists(_text, min_size=1, max_size=2),
                                st.lists(st.booleans(), min_size=1, max_size=2),
                                st.lists(_nonfinite, min_size=1, max_size=2)),
        "bool_or_auto": st.one_of(_ints, _floats, _text.filter(lambda s: s != "auto")),
        "float_or_auto": st.one_of(st.booleans(), _lists, _text.filter(lambda s: s != "auto"), _nonfinite),
        "float_or_duration": st.one_of(st.booleans(), _lists, _nonfinite),
    }[f.type]


def _invalid(f):
    """Wrong types, values outside the choices, values the range check refuses."""
    opts = [_wrong_type(f)]
    choices = f.options()
    if choices:
        opts.append(_text.filter(lambda s: s not in choices))
    if f.check is not None:
        if f.type == "int":
            opts.append(_ints.filter(lambda v: not f.check(v)))
        elif f.type in ("float", "float_or_auto"):
            opts.append(st.one_of(_ints, _floats).filter(lambda v: not f.check(v)))
        elif f.type == "float_or_duration":  # negative numbers, strings that are no duration
            opts.append(st.one_of(_ints, _floats, _text).filter(lambda v: not f.check(v)))
        elif f.type == "int_list":
            opts.append(st.lists(_ints, max_size=3).filter(lambda v: not f.check(v)))
        elif f.type == "float_list":
            opts.append(st.lists(st.one_of(_ints, _floats), max_size=3).filter(lambda v: not f.check(v)))
        elif f.type == "str":
            opts.append(_text.filter(lambda v: not f.check(v)))
    return st.one_of(*opts)


@st.composite
def bad_key_value(draw):
    sec, key = draw(st.sampled_from(KEYS))
    return sec, key, draw(_invalid(C.SCHEMA[sec][key]))


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else "-inf" if v == -math.inf else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # a JSON string is a TOML basic string, given raw non-ASCII (TOML has no surrogate
        # escapes) and an escaped DEL (JSON leaves it raw, TOML forbids it)
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(v)


def _config_text(over):
    data = tiny()
    for (sec, key), v in over.items():
        data.setdefault(sec, {})[key] = v
    return "".join(f"[{s}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in t.items()) for s, t in data.items())


def _refused(argv, work, capsys):
    capsys.readouterr()
    rc = main(argv + ["--out", os.path.join(work, "out"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert not os.path.exists(os.path.join(work, "out")), "something was written"
    return err


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(bad_key_value())
def test_an_invalid_value_in_the_config_file_is_refused_naming_the_key(capsys, bad):
    sec, key, v = bad
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "c.toml")
        with open(path, "w") as fh:
            fh.write(_config_text({(sec, key): v}))
        err = _refused(["run", path], work, capsys)
        assert f"{sec}.{key}" in err


@SETTINGS
@given(bad_key_value())
def test_an_invalid_value_through_set_is_refused_naming_the_key(capsys, bad):
    sec, key, v = bad
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "c.toml")
        with open(path, "w") as fh:
            fh.write(_config_text({}))
        err = _refused(["run", path, "--set", f"{sec}.{key}={_toml_value(v)}"], work, capsys)
        assert f"{sec}.{key}" in err


_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@st.composite
def malformed_set(draw):
    """``--set`` items that are not ``section.key=value`` of a known key."""
    kind = draw(st.sampled_from(["no-equals", "no-dot", "unknown-section", "unknown-key"]))
    if kind == "no-equals":
        item = draw(_text.filter(lambda s: "=" not in s))
        return item, "--set"
    if kind == "no-dot":
        item = draw(_word) + "=" + draw(_text)
        return item, "--set"
    if kind == "unknown-section":
        sec = draw(_word.filter(lambda s: s not in C.SCHEMA))
        return f"{sec}.{draw(_word)}=1", f"[{sec}]"
    sec = draw(st.sampled_from(sorted(C.SCHEMA)))
    key = draw(_word.filter(lambda k: k not in C.SCHEMA[sec]))
    return f"{sec}.{key}=1", f"{sec}.{key}"


@SETTINGS
@given(malformed_set())
def test_a_malformed_set_item_is_refused_naming_it(capsys, case):
    item, named = case
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "c.toml")
        with open(path, "w") as fh:
            fh.write(_config_text({}))
        err = _refused(["run", path, "--set", item], work, capsys)
        assert named in err
