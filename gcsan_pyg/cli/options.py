"""The options of the ``gcsan-pyg`` commands and reading them from a config file.

Every option lives in one table, with its help text and its real default,
read off the signature that applies it (:class:`~gcsan_pyg.nn.GCSAN`,
:class:`~gcsan_pyg.training.TrainConfig`,
:class:`~gcsan_pyg.data.SessionDataset`,
:func:`~gcsan_pyg.data.generate_synthetic_sessions`), so that ``--help``
shows the value a run uses. On the command line every option defaults to
:obj:`None`, which tells an option given from one left out: the layers are
the real defaults, then the config file, then the command line.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from gcsan_pyg.data import SessionDataset, generate_synthetic_sessions
from gcsan_pyg.interop.recbole import MODEL_NAMES, TRAIN_NAMES, recbole_to_options
from gcsan_pyg.nn import GCSAN
from gcsan_pyg.nn.gcsan import LOSS_TYPES
from gcsan_pyg.nn.sampled_softmax import SAMPLER_KINDS
from gcsan_pyg.nn.self_attention import ACTIVATIONS
from gcsan_pyg.training import TrainConfig


class UsageError(Exception):
    """A wrong command line, config file or input: ``gcsan-pyg`` prints
    its message on one line and exits with status 2."""


def positive_int(text: str) -> int:
    """An integer of at least 1, from the command line."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_ks(text: str) -> tuple[int, ...]:
    """Metric cut-offs from ``"10,20"``."""
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected cut-offs like 10,20, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"cut-offs must be positive, got {text!r}")
    return ks


@dataclass(frozen=True)
class Option:
    r"""One option: ``--some-name`` on the command line, :obj:`some_name`
    (or ``some-name``) in a config file.

    Args:
        name (str): the option's name, as the function it goes to spells it.
        kind (type or callable): :obj:`int`, :obj:`float`, :obj:`str`,
            :obj:`bool` (an on/off switch) or a parser of the text, such as
            :func:`parse_ks`.
        help (str): what it sets.
        default (Any): the value used when it is given nowhere.
        choices (tuple, optional): the allowed values, where fixed.
        shown (str, optional): how ``--help`` shows the default, where the
            value itself would not tell (e.g. :obj:`None`).
    """

    name: str
    kind: type | Callable[[str], Any]
    help: str
    default: Any = None
    choices: tuple[str, ...] | None = None
    shown: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def help_text(self, alternative: str = "") -> str:
        """The help with its default, e.g. ``"... (default: 0.6)"``."""
        return f"{self.help} (default: {self.shown or show(self.default)}{alternative})"

    def coerce(self, value: Any) -> Any:
        """A config-file value as this option's type, or :class:`ValueError`."""
        if self.kind is parse_ks:  # [10, 20], or "10,20" as on the command line
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            try:
                return parse_ks(text)
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"{self.name} = {value!r}: {error}") from None
        if self.kind is bool:
            valid = isinstance(value, bool)
        elif self.kind is float:
            valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:  # int and str: exactly that type (YAML's `5` is no str, `true` no int)
            valid = type(value) is self.kind
        if not valid:
            raise ValueError(f"{self.name} = {value!r} is not a valid {self.kind.__name__}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{self.name} = {value!r} is not one of {list(self.choices)}")
        return float(value) if self.kind is float else value


def show(value: Any) -> str:
    """A default as ``--help`` writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _defaults(function: Callable[..., Any]) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _table(defaults: dict[str, Any], rows: Iterable[tuple[Any, ...]]) -> dict[str, Option]:
    """Options named as the keys of :obj:`defaults`, from rows ``(name,
    kind, help[, choices[, shown]])``."""
    table = {}
    for name, kind, text, *rest in rows:
        table[name] = Option(name, kind, text, defaults[name], *rest)
    return table


_MODEL = _defaults(GCSAN.__init__)
_TRAIN = {f.name: f.default for f in fields(TrainConfig)}
_DATA = _defaults(SessionDataset.__init__)
_GENERATOR = _defaults(generate_synthetic_sessions)

MODEL_OPTIONS = _table(_MODEL, [
    ("hidden_channels", int, "embedding and state size"),
    ("num_layers", int, "self-attention layers"),
    ("num_heads", int, "attention heads"),
    ("inner_channels", int, "feed-forward width"),
    ("num_steps", int, "propagation steps of the gated graph cell; RecBole's step"),
    ("attention_weight", float, "share of the self-attention output in the session vector; "
                                "RecBole's weight"),
    ("hidden_dropout", float, "dropout inside the encoder layers"),
    ("attn_dropout", float, "dropout on attention probabilities"),
    ("activation", str, "feed-forward activation", tuple(ACTIVATIONS)),
    ("layer_norm_eps", float, "layer-norm epsilon"),
    ("initializer_range", float, "std of the normal initialisation"),
    ("loss_type", str, "CE: softmax over all items; BPR: one uniform negative per sample; "
                       "sampled: sampled softmax (for large item tables)", LOSS_TYPES),
    ("reg_weight", float, "weight of the embedding regulariser (CE and BPR)"),
    ("num_negatives", int, "sampled softmax: negatives per batch"),
    ("negative_sampler", str, "sampled softmax: how negatives are drawn", SAMPLER_KINDS),
    ("popularity_exponent", float, "sampled softmax: exponent of the training counts of the "
                                   "popularity sampler"),
    ("in_batch_negatives", bool, "sampled softmax: the batch's other targets are negatives too"),
])
TRAIN_OPTIONS = _table(_TRAIN, [
    ("epochs", int, "most epochs"),
    ("batch_size", int, "training samples (session prefixes) per step; per process under "
                        "torchrun"),
    ("eval_batch_size", int, "samples per evaluation batch"),
    ("lr", float, "initial learning rate"),
    ("lr_step", int, "epochs between learning-rate decays (0: never)"),
    ("lr_gamma", float, "learning-rate decay factor"),
    ("weight_decay", float, "Adam L2 penalty"),
    ("patience", int, "early stopping: epochs without improvement (0: off)"),
    ("metric", str, "validation metric for model selection, Hit, MRR or NDCG at a cut-off of "
                    "--ks"),
    ("ks", parse_ks, "metric cut-offs"),
    ("seed", int, "random seed (shuffling, initialisation, dropout)"),
    ("max_length", int, "keep only the most recent clicks of longer sessions (evaluate and "
                        "recommend keep the checkpoint's)", None, "no limit"),
    ("device", str, "cpu, cuda, cuda:1, ... or auto (cuda where available); under torchrun, "
                    "cuda is each process's GPU LOCAL_RANK"),
    ("bf16", bool, "bfloat16 autocast of the training forward pass (CPU and CUDA); the softmax "
                   "over all items, the optimizer and evaluation stay float32"),
    ("compile", bool, "torch.compile the graph cell and the self-attention stack (falls back to "
                      "eager, with a warning, where compilation is unavailable)"),
])
DATA_OPTIONS = _table(_DATA, [
    ("valid_fraction", float, "share of the training sessions (the most recent) held out for "
                              "validation; a .inter file has RecBole's leave-one-out instead"),
    ("min_prefix_length", int, "training and validation samples keep only session prefixes of "
                               "at least this length (test samples stay as given)"),
])
SYNTHETIC_OPTIONS = _table(_GENERATOR, [
    ("num_items", int, "synthetic data: items in the catalogue"),
    ("num_train_sessions", int, "synthetic data: training sessions (before the validation "
                                "hold-out)"),
    ("num_test_sessions", int, "synthetic data: test sessions"),
])
# `gcsan-pyg train` with no data trains on the built-in synthetic set, with a
# schedule that converges on it in well under a minute.
SYNTHETIC_DEFAULTS: dict[str, Any] = {"epochs": 12, "lr_step": 4}
DEFAULT_ROOT = "data_cache"
# Config-file keys beyond the option tables, and their types.
RUN_OPTIONS = {
    option.name: option for option in (
        Option("data", str, "the data"),
        Option("root", str, "processed-data cache"),
        Option("out", str, "checkpoint folder"),
        Option("threads", int, "torch CPU threads", shown="torch's choice"),
        Option("quiet", bool, "no progress bars"),
        Option("skip_test", bool, "train (and validate) only: the test split is neither "
               "evaluated nor reported, as a model-selection protocol needs", shown="off"),
    )
}


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` (an exponent, no dot) as a
    float, as YAML 1.2 and RecBole do: PyYAML's YAML 1.1 would read the
    string ``"1e-3"``, which RecBole's own files are full of."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def add_options(parser: argparse.ArgumentParser, options: dict[str, Option],
                title: str) -> None:
    """Adds :obj:`options` as a group of flags defaulting to :obj:`None`."""
    group = parser.add_argument_group(title)
    for option in options.values():
        alternative = ""
        if option.name in SYNTHETIC_DEFAULTS:
            alternative = f"; {show(SYNTHETIC_DEFAULTS[option.name])} on synthetic data"
        if option.kind is bool:
            group.add_argument(option.flag, dest=option.name, action="store_true", default=None,
                               help=option.help_text(alternative))
        else:
            group.add_argument(option.flag, dest=option.name, type=option.kind, default=None,
                               choices=option.choices, metavar=_metavar(option),
                               help=option.help_text(alternative))


def _metavar(option: Option) -> str:
    if option.choices is not None:
        return "{" + ",".join(option.choices) + "}"
    return {int: "N", float: "X", parse_ks: "K,K"}.get(option.kind, option.name.upper())


def add_threads(parser: argparse.ArgumentParser) -> None:
    """Adds ``--threads``."""
    parser.add_argument("--threads", type=positive_int, default=None,
                        help=RUN_OPTIONS["threads"].help_text())


def add_progress_flags(parser: argparse.ArgumentParser) -> None:
    """Adds ``--quiet`` and ``--progress`` (one or the other)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", default=None,
                       help="no progress bars (default: off; bars are drawn only when stderr "
                            "is a terminal)")
    group.add_argument("--progress", action="store_true", default=None,
                       help="progress bars even when stderr is not a terminal, e.g. for a "
                            "program that watches them (default: off)")


def show_progress(quiet: bool | None, progress: bool | None) -> bool:
    """Progress bars on a terminal only, unless asked otherwise: in a log file
    their carriage returns would pile up into one huge line per epoch."""
    return bool(progress) or (not quiet and sys.stderr.isatty())


def read_config(path: str | Path) -> dict[str, Any]:
    r"""The options of a YAML or TOML config file (``.toml``: TOML, else
    YAML), under our names: ``gcsan-pyg train``'s option names (with ``_``
    or ``-``) and RecBole's config names (``hidden_size``, ``n_heads``,
    ``step``, ``weight``, ``learning_rate``, ``MAX_ITEM_LIST_LENGTH``, ...,
    see :func:`~gcsan_pyg.interop.recbole.recbole_to_options`).

    Raises:
        UsageError: the file is missing or malformed, has a key that is no
            option, gives an option twice (under both spellings) or a value
            of the wrong type or outside the option's choices; the message
            names the key(s) and the file.
    """
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"config file {file} does not exist")
    try:
        if file.suffix == ".toml":
            config = tomllib.loads(file.read_text())
        else:
            config = yaml.load(file.read_text(), ConfigLoader) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
        message = " ".join(str(error).split())
        raise UsageError(f"config file {file} is not valid: {message}") from error
    if not isinstance(config, dict):
        raise UsageError(f"config file {file} must hold a mapping of option: value")

    ours = {**MODEL_OPTIONS, **TRAIN_OPTIONS, **DATA_OPTIONS, **SYNTHETIC_OPTIONS, **RUN_OPTIONS}
    recbole = {**MODEL_NAMES, **TRAIN_NAMES}
    given: dict[str, list[str]] = {}  # our name -> the file's keys for it
    unknown = []
    for key in config:
        name = str(key).replace("-", "_")
        if name not in ours and key in recbole:
            name = recbole[key][0]
        if name in ours:
            given.setdefault(name, []).append(str(key))
        else:
            unknown.append(str(key))
    if unknown:
        raise UsageError(f"config file {file} has unknown options {sorted(unknown)} (see "
                         "gcsan-pyg train --help; RecBole's config names are accepted too)")
    twice = {name: keys for name, keys in given.items() if len(keys) > 1}
    if twice:
        spelled = "; ".join(f"{name} as {' and '.join(map(repr, keys))}"
                            for name, keys in sorted(twice.items()))
        raise UsageError(f"config file {file} gives an option twice: {spelled}")

    values = {}
    for name, (key,) in given.items():
        value = config[key]
        try:
            if key in recbole:  # RecBole's name (maybe ours too): its conversion rules
                value = recbole_to_options({key: value}).get(name)
            if value is not None:  # `key:` with no value: the default
                values[name] = ours[name].coerce(value)
        except ValueError as error:
            raise UsageError(f"config file {file}: {error}") from None
    return values
