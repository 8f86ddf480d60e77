"""Fuzz the command line: generated arguments and mutated checkpoints never give a traceback.

The property of every run: exit 0 with valid output, or exit 1 or 2 with exactly one line
on stderr and no traceback, within a time bound; a flag with a value out of its documented
range exits 2. CI runs a bounded number of examples; `MECHSCOPE_FUZZ_EXAMPLES=2000` (see
the README's Reliability section) runs a longer search.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mechscope.cli.main import main
from mechscope.data import digits_data, function_data, modular_data
from mechscope.models import (
    DigitCNN,
    DigitCNNConfig,
    GrokkingMLP,
    GrokkingMLPConfig,
    ModularMLP,
    ModularMLPConfig,
    TinyReLU,
    TinyReLUConfig,
    build_seeded,
)
from mechscope.models.checkpoint import META_FILE, save_checkpoint
from tests.attribution.conftest import one_thread

EXAMPLES = int(os.environ.get("MECHSCOPE_FUZZ_EXAMPLES", "0")) or None
SECONDS = 60.0  # bound on one command (generous: the machine is shared and the slowest valid run is ~5 s)
FUZZ = settings(
    max_examples=EXAMPLES or 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    derandomize=EXAMPLES is None,  # CI: the same examples every run; a long run explores
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: every example runs a command; the failing one is printed
    report_multiple_bugs=False,
)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuzz")
    cnn = build_seeded(DigitCNN, DigitCNNConfig(image_size=8, channels=(4, 8), pools=1, gap=True), 0)
    made = {
        "cnn": save_checkpoint(root / "cnn", cnn, data_spec=digits_data("digits").spec),
        "mlp": save_checkpoint(root / "mlp", build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=4), 0),
                               data_spec=modular_data(2, n_train=64, n_test=32).spec),
        "relu": save_checkpoint(root / "relu", build_seeded(TinyReLU, TinyReLUConfig(n_inputs=3), 0),
                                data_spec=function_data("sum", n_inputs=3, n_train=200, n_test=100).spec),
        "grok": save_checkpoint(root / "grok", build_seeded(GrokkingMLP, GrokkingMLPConfig(modulus=7, d_embed=8,
                                                                                         width=16), 0),
                                data_spec=modular_data(7, encoding="pairs", test_fraction=0.5).spec),
    }
    return made


def run(argv: list[str]) -> tuple[int, str, str, float]:
    """Run the command in this process; return (exit code, stdout, stderr, seconds)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - start


def check(argv: list[str], *, bad: bool) -> tuple[int, str]:
    """Assert the property; `bad`: a flag is out of its range, so the exit code must be 2."""
    env = os.environ.pop("MECHSCOPE_DEBUG", None)
    try:
        code, out, err, seconds = run(argv)
    finally:
        if env is not None:
            os.environ["MECHSCOPE_DEBUG"] = env
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert seconds < SECONDS, (argv, seconds)
    if code == 0:
        assert not bad, (argv, "a bad argument was accepted")
        if "--format" in argv and argv[argv.index("--format") + 1] == "json":
            json.loads(out)
        return code, out
    lines = err.strip().splitlines()
    assert code in (1, 2) and len(lines) == 1 and lines[0].startswith("Error: "), (argv, code, err)
    if bad:
        assert code == 2, (argv, err)
    return code, err


# -- strategies -------------------------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
HUGE = st.sampled_from(["1000000000000", str(2**64), "99999999999999999999999999999", "-1", "-5"])
NOT_A_NUMBER = st.sampled_from(["x", "", "1e3x", "nan", "inf", "-inf", "0x10", " ", "3\u0663x"])
NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "1e400"])


def switch(name: str) -> st.SearchStrategy[Any]:
    """(args, is_bad) of an on/off flag: present or left out."""
    return st.sampled_from([([], False), ([name], False)])


def small_int(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(str)


def flag(name: str, good: st.SearchStrategy[str], bad: st.SearchStrategy[str] | None) -> st.SearchStrategy[Any]:
    """(args, is_bad): the flag with a valid value, an out-of-range value, or left out."""
    options: list[st.SearchStrategy[Any]] = [st.just(([], False)), good.map(lambda v: ([name, v], False))]
    if bad is not None:
        options.append(bad.map(lambda v: ([name, v], True)))
    return st.one_of(options)


def int_flag(name: str, low: int, high: int) -> st.SearchStrategy[Any]:
    below = st.integers(-10, low - 1).map(str) if low > -10 else st.nothing()
    return flag(name, small_int(low, high), st.one_of(below, HUGE.filter(lambda v: int(v) > high or int(v) < low),
                                                      NOT_A_NUMBER))


def float_flag(name: str, good: st.SearchStrategy[float], bad_values: list[str]) -> st.SearchStrategy[Any]:
    return flag(name, good.map(repr), st.one_of(st.sampled_from(bad_values), NOT_A_NUMBER))


def out_flag(tmp: Path) -> st.SearchStrategy[Any]:
    names = st.one_of(
        st.sampled_from(["figs", ".", "..", "x" * 300, "a/b/c", "checkpoint.json", "exists-file", "exists-dir"]),
        TEXT.filter(lambda t: t.strip() and "/" not in t),
    )
    return names.map(lambda n: (["--out", str(tmp / n)], False))


def combine(*flags: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[list[str], bool]]:
    def merge(parts: tuple[Any, ...]) -> tuple[list[str], bool]:
        args: list[str] = []
        bad = False
        for part_args, part_bad in parts:
            args += part_args
            bad = bad or part_bad
        return args, bad

    return st.tuples(*flags).map(merge)


FORMAT = flag("--format", st.sampled_from(["text", "json"]), st.sampled_from(["xml", "JSON", ""]))
SEED = int_flag("--seed", 0, 3)


def _user_files(tmp: Path) -> None:
    (tmp / "exists-file").write_text("mine")
    (tmp / "exists-dir").mkdir(exist_ok=True)
    (tmp / "exists-dir" / "notes.txt").write_text("mine")


def _user_files_intact(tmp: Path) -> None:
    assert (tmp / "exists-file").read_text() == "mine"
    assert (tmp / "exists-dir" / "notes.txt").read_text() == "mine"


# -- commands with generated arguments ----------------------------------------------------------------------------

COMMANDS: dict[str, tuple[str, Any]] = {
    "probe": ("mlp", lambda tmp: combine(
        flag("--layers", st.sampled_from(["hidden.0,hidden.1", "hidden.0"]), st.sampled_from(["nope", ",", "x,y"])),
        int_flag("--kernels", 1, 3),
        flag("--kernel-size", st.sampled_from(["1x1", "2x1", "1X2"]),
             st.one_of(st.sampled_from(["9x9", "0x2", "2", "axb", "2x\u00b2", "1" * 5000 + "x1"]))),
        flag("--hidden", st.sampled_from(["", "4", "4,4"]), st.sampled_from(["0", "x", "4,,-1", "9" * 50])),
        float_flag("--dropout", st.floats(0.0, 0.9), ["1", "1.5", "-0.1"]),
        int_flag("--epochs", 1, 3), int_flag("--seeds", 1, 2), SEED,
        float_flag("--test-fraction", st.floats(0.1, 0.5), ["0", "1", "2"]),
        flag("--split", st.sampled_from(["examples", "types"]), st.sampled_from(["both", ""])),
        switch("--no-untrained"),
        out_flag(tmp), FORMAT)),
    "formula": ("relu", lambda tmp: combine(
        flag("--split", st.sampled_from(["test", "train", "all"]), st.sampled_from(["nope", ""])),
        flag("--data", st.nothing(), st.sampled_from(["nope", "/no/such.json", "npz:/no/such.npz"])),
        flag("--input-transform", st.sampled_from(["identity", "log"]), st.sampled_from(["bogus", "LOG2"])),
        float_flag("--tolerance", st.floats(0, 1), ["-1", "inf"]),
        float_flag("--relation-tolerance", st.floats(0, 1), ["-1e-3"]),
        int_flag("--max-regions", 1, 5), out_flag(tmp), FORMAT)),
    "formula --local": ("relu", lambda tmp: combine(
        st.just((["--local"], False)),
        flag("--output-transform", st.nothing(), st.sampled_from(["bogus", "exp"])), FORMAT)),
    "attribute": ("cnn", lambda tmp: combine(
        flag("--method", st.sampled_from(["saliency", "grad-cam", "cam", "integrated-gradients"]),
             st.sampled_from(["nope", "gradcam", ""])),
        flag("--layer", st.sampled_from(["relu2", "conv2"]), st.sampled_from(["nope", "fc", "relu2.x"])),
        int_flag("--n", 1, 4), switch("--sanity"),
        SEED, out_flag(tmp), FORMAT)),
    "examples": ("cnn", lambda tmp: combine(
        flag("--layer", st.sampled_from(["relu1", "relu2", "fc"]), st.sampled_from(["nope", "relu9"])),
        int_flag("--k", 1, 5), flag("--split", st.sampled_from(["all", "train", "test"]), st.just("val")),
        flag("--reduce", st.sampled_from(["max", "mean"]), st.just("sum")), int_flag("--min-classes", 1, 4),
        out_flag(tmp), FORMAT)),
    "circuits": ("cnn", lambda tmp: combine(
        flag("--layer", st.sampled_from(["relu2"]), st.sampled_from(["nope"])),
        flag("--top", st.sampled_from(["1", "2"]), st.sampled_from(["0", "5", "1000000", "x"])),
        flag("--method", st.sampled_from(["auto", "gap", "gradient"]), st.just("exact")),
        flag("--ablation", st.sampled_from(["zero", "mean"]), st.just("noise")),
        int_flag("--n-random", 1, 3), SEED, out_flag(tmp), FORMAT)),
    "fourier": ("grok", lambda tmp: combine(
        float_flag("--share", st.floats(0.5, 1.0), ["0", "1.5", "-1"]),
        float_flag("--threshold", st.floats(0.5, 1.0), ["0", "2"]),
        flag("--layer", st.sampled_from(["act", "hidden"]), st.sampled_from(["nope", "embed.x"])),
        out_flag(tmp), FORMAT)),
    "featurevis": ("cnn", lambda tmp: combine(
        st.just((["--layer", "relu1"], False)),
        flag("--units", st.sampled_from(["all", "0", "0,3", "1,2"]), st.sampled_from(["4", "-1", "a", "0,,1", "9" * 40])),
        flag("--objective", st.sampled_from(["channel", "neuron", "layer"]), st.just("pixel")),
        int_flag("--steps", 1, 3), int_flag("--restarts", 1, 2),
        flag("--transforms", st.sampled_from(["none", "standard"]), st.just("all")),
        SEED, out_flag(tmp), FORMAT)),
    "layers": ("mlp", lambda tmp: combine(FORMAT)),
}


UNAVAILABLE_DEVICES = ["gpu", "cuda:x", "cuda:99999", "", "cpu:0"] + ([] if torch.cuda.is_available()
                                                                     else ["cuda", "cuda:0"])
MODEL_OPTIONS = combine(  # the options every model command shares; with a checkpoint, the --model ones are misplaced
    flag("--device", st.sampled_from(["cpu", "auto", "CPU"]), st.sampled_from(UNAVAILABLE_DEVICES)),
    flag("--model-arg", st.nothing(), st.sampled_from(["width=3", "x"])),
    flag("--weights", st.nothing(), st.sampled_from(["w.safetensors", "w.pt"])),
    flag("--image-size", st.nothing(), st.sampled_from(["8", "0", "8x"])),
    flag("--data", st.nothing(), st.sampled_from(["nope", "npz:/no/such.npz", "images:/no/such", "{}"])),
)


SLOW_COMMANDS = {"attribute", "circuits", "examples", "formula", "fourier", "probe"}
"""Commands whose runs take up to a second or more each: 40 of them take tens of seconds."""


@pytest.mark.parametrize(
    "command", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_COMMANDS else c for c in sorted(COMMANDS)]
)
def test_fuzz_command_arguments(command, checkpoints, tmp_path):
    name, strategy = COMMANDS[command]
    _user_files(tmp_path)
    verb = command.split()[0]

    @FUZZ
    @given(strategy(tmp_path), MODEL_OPTIONS)
    def one(case: tuple[list[str], bool], shared: tuple[list[str], bool]) -> None:
        args, bad = case[0] + shared[0], case[1] or shared[1]
        check([verb, str(checkpoints[name]), *args], bad=bad)
        _user_files_intact(tmp_path)

    one()


TRAIN_BAD = st.one_of(
    st.tuples(st.sampled_from(["modular-mlp", "tiny-relu", "digit-cnn", "grokking-mlp"]), st.just("--seed"),
              st.sampled_from(["-1", str(2**64), "x", "1.5"])),
    st.tuples(st.just("modular-mlp"), st.sampled_from(["--modulus", "--layers", "--hidden"]),
              st.one_of(HUGE, NOT_A_NUMBER, st.just("0"))),
    st.tuples(st.just("tiny-relu"), st.sampled_from(["--inputs", "--hidden"]), st.one_of(HUGE, NOT_A_NUMBER)),
    st.tuples(st.just("tiny-relu"), st.just("--function"), st.sampled_from(["square", "", "SUM"])),
    st.tuples(st.just("digit-cnn"), st.just("--data"), TEXT.filter(lambda t: not t.startswith("idx:"))
              .filter(lambda t: t not in ("digits", "mnist5k"))),
    st.tuples(st.just("grokking-mlp"), st.just("--lr"), st.one_of(NON_FINITE, st.sampled_from(["-1", "0"]))),
    st.tuples(st.just("grokking-mlp"), st.just("--weight-decay"), st.one_of(NON_FINITE, st.just("-1"))),
    st.tuples(st.just("grokking-mlp"), st.just("--train-fraction"), st.sampled_from(["nan", "0", "1", "-1", "inf"])),
    st.tuples(st.just("grokking-mlp"), st.sampled_from(["--steps", "--width", "--d-embed", "--modulus"]),
              st.one_of(HUGE, NOT_A_NUMBER)),
)


@FUZZ
@given(case=TRAIN_BAD)
def test_fuzz_train_rejects_bad_values_before_training(case, tmp_path_factory):
    target, name, value = case
    out = tmp_path_factory.mktemp("train") / "ck"
    check(["train", target, name, value, "--out", str(out)], bad=True)
    assert not out.exists()


@FUZZ
@given(args=st.lists(st.one_of(TEXT, st.sampled_from(["--help", "-h", "--format", "json", "--out", "--", "-"])),
                     max_size=4),
       verb=st.sampled_from(["", "train", "layers", "tour", "report", "serve", "probe", "nope", "TRAIN"]))
def test_fuzz_any_words(args, verb):
    argv = ([verb] if verb else []) + args
    if "--help" in argv or "-h" in argv:
        return  # help prints many lines on stdout by design
    if verb in ("tour", "report", "serve") and "--out" not in argv and not args:
        return
    code, out, err, seconds = run(argv)
    assert "Traceback" not in err and seconds < SECONDS
    if code != 0:
        assert code in (1, 2) and len(err.strip().splitlines()) == 1, (argv, err)


# -- mutated checkpoints ------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
FIELDS = ["format", "format_version", "model_class", "config", "data_spec", "metrics", "history", "extra",
          "mechscope_version", "weights_sha256"]
MUTATED_COMMANDS = [["layers"], ["examples", "--layer", "hidden.0", "--k", "2"], ["fourier"],
                    ["formula", "--max-regions", "2"]]


@FUZZ
@given(
    field=st.one_of(st.sampled_from([[f] for f in FIELDS]),
                    st.sampled_from([["config", "modulus"], ["config", "n_layers"], ["config", "hidden"],
                                     ["config", "activation"], ["data_spec", "kind"], ["data_spec", "modulus"],
                                     ["data_spec", "n_train"], ["data_spec", "seed"]])),
    value=st.one_of(JSON_VALUES, st.sampled_from([100_000_000, -1, 0, 2**31 - 1, "1", [1], {"a": 1}, 1e308, "deep"])),
    command=st.sampled_from(MUTATED_COMMANDS),
)
def test_fuzz_mutated_checkpoint_fields(field, value, command, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mut") / "ck"
    model = build_seeded(ModularMLP, ModularMLPConfig(modulus=3, n_layers=3, hidden=4), 0)
    save_checkpoint(folder, model, data_spec=modular_data(3, n_train=30, n_test=10).spec)
    meta = json.loads((folder / META_FILE).read_text())
    target = meta
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    text = json.dumps(meta, allow_nan=True)
    if value == "deep":  # nesting deeper than Python's recursion limit
        text = text.replace('"deep"', "[" * 100_000 + "]" * 100_000)
    (folder / META_FILE).write_text(text)
    check([command[0], str(folder), *command[1:]], bad=False)


@pytest.mark.parametrize("cut", [0, 7, 8, 60, -1])
def test_fuzz_truncated_and_swollen_weights(cut, checkpoints, tmp_path):
    """A weights file cut short, or with a header claiming 8 GB, is refused before it is hashed."""
    import shutil

    folder = tmp_path / "ck"
    shutil.copytree(checkpoints["mlp"], folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if cut >= 0:
        weights.write_bytes(data[:cut])
    else:
        with open(weights, "r+b") as handle:  # a sparse 8 GB file: reading it all would take a minute
            handle.truncate(8 << 30)
    code, err = check(["layers", str(folder)], bad=False)
    assert code == 1 and "model.safetensors" in err
