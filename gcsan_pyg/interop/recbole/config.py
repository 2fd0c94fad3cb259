"""RecBole configuration names <-> gcsan_pyg's arguments and options.

One table per kind of option maps a RecBole config name to ours and to the
type its value must have; every conversion, both directions, is derived from
these tables:

* :data:`MODEL_NAMES`: the :class:`~gcsan_pyg.nn.GCSAN` constructor arguments
  (``hidden_size`` -> ``hidden_channels``, ``n_heads`` -> ``num_heads``, ...),
* :data:`TRAIN_NAMES`: the training options of ``gcsan-pyg train``
  (``learning_rate`` -> ``lr``, ``stopping_step`` -> ``patience``,
  ``MAX_ITEM_LIST_LENGTH`` -> ``max_length``, ...).
"""
from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MODEL_NAMES",
    "TRAIN_NAMES",
    "recbole_hyperparameters",
    "recbole_to_options",
    "options_to_recbole",
    "recbole_name",
    "recbole_inter_fields",
    "recbole_data_differences",
]

#: RecBole config name -> (:class:`~gcsan_pyg.nn.GCSAN` argument, value type).
MODEL_NAMES: Mapping[str, tuple[str, type]] = types.MappingProxyType({
    "hidden_size": ("hidden_channels", int),
    "inner_size": ("inner_channels", int),
    "n_layers": ("num_layers", int),
    "n_heads": ("num_heads", int),
    "step": ("num_steps", int),
    "weight": ("attention_weight", float),
    "hidden_dropout_prob": ("hidden_dropout", float),
    "attn_dropout_prob": ("attn_dropout", float),
    "hidden_act": ("activation", str),
    "layer_norm_eps": ("layer_norm_eps", float),
    "initializer_range": ("initializer_range", float),
    "reg_weight": ("reg_weight", float),
    "loss_type": ("loss_type", str),
})

#: RecBole config name -> (``gcsan-pyg train`` option, value type). With
#: RecBole's ``eval_step: 1``, its ``stopping_step`` counts epochs as our
#: ``patience`` does.
TRAIN_NAMES: Mapping[str, tuple[str, type]] = types.MappingProxyType({
    "learning_rate": ("lr", float),
    "train_batch_size": ("batch_size", int),
    "eval_batch_size": ("eval_batch_size", int),
    "epochs": ("epochs", int),
    "stopping_step": ("patience", int),
    "weight_decay": ("weight_decay", float),
    "seed": ("seed", int),
    "MAX_ITEM_LIST_LENGTH": ("max_length", int),
})

_ALL_NAMES = {**MODEL_NAMES, **TRAIN_NAMES}
_RECBOLE_NAME = {ours: recbole for recbole, (ours, _) in _ALL_NAMES.items()}


def _convert(name: str, value: Any, kind: type) -> Any:
    """:obj:`value` of RecBole's :obj:`name` as a :obj:`kind`, checked."""
    if name == "reg_weight" and isinstance(value, (list, tuple)):
        # RecBole allows a list for some models; GCSAN uses one number.
        if len(value) != 1:
            raise ValueError(f"RecBole 'reg_weight' must be one number, got {value!r}")
        value = value[0]
    if kind is str:
        valid = isinstance(value, str)
    else:  # ints for int options; ints or floats for float options; never bools
        valid = not isinstance(value, bool) and (
            isinstance(value, int) or (kind is float and isinstance(value, float))
        )
    if not valid:
        raise ValueError(f"RecBole config '{name}' = {value!r} is not a valid {kind.__name__}")
    return kind(value)


def recbole_hyperparameters(
    config: Mapping[str, Any],
    state_dict: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    r""":class:`~gcsan_pyg.nn.GCSAN` constructor arguments from a RecBole
    config, by :data:`MODEL_NAMES`; other config names are ignored.

    Args:
        config (Mapping): RecBole config names and values (a checkpoint's
            ``final_config_dict``, a RecBole YAML file, ...). Names absent or
            :obj:`None` are left out.
        state_dict (Mapping, optional): RecBole's GCSAN parameters; adds
            :obj:`num_items`, the row count of ``item_embedding.weight``.

    Returns:
        The arguments, under GCSAN's names.

    Raises:
        ValueError: a value has the wrong type, or ``reg_weight`` is not a
            single number.
    """
    out = {
        ours: _convert(name, config[name], kind)
        for name, (ours, kind) in MODEL_NAMES.items()
        if config.get(name) is not None
    }
    if state_dict is not None:
        table = state_dict.get("item_embedding.weight")
        if getattr(table, "ndim", None) != 2:
            raise ValueError("RecBole state_dict lacks a 2-D 'item_embedding.weight'")
        out["num_items"] = int(table.shape[0])
    return out


def recbole_to_options(config: Mapping[str, Any]) -> dict[str, Any]:
    r"""``gcsan-pyg train`` options (model and training) from RecBole config
    names, by :data:`MODEL_NAMES` and :data:`TRAIN_NAMES`; a RecBole YAML
    file of these names thus configures our training.

    Args:
        config (Mapping): RecBole config names and values; :obj:`None`
            values are left out (our defaults apply).

    Returns:
        The options under our names (e.g. ``{"hidden_channels": 64,
        "lr": 0.001, "max_length": 50}``).

    Raises:
        ValueError: a name has no counterpart here (all of them are listed),
            or a value has the wrong type.
    """
    unknown = sorted(str(name) for name in config if name not in _ALL_NAMES)
    if unknown:
        raise ValueError(
            f"RecBole options {unknown} have no gcsan_pyg counterpart; known: "
            f"{sorted(_ALL_NAMES)}"
        )
    return {
        _ALL_NAMES[name][0]: _convert(name, value, _ALL_NAMES[name][1])
        for name, value in config.items()
        if value is not None
    }


def options_to_recbole(options: Mapping[str, Any]) -> dict[str, Any]:
    r"""The inverse of :func:`recbole_to_options`: RecBole config names and
    values from our options (e.g. :attr:`GCSAN.hparams
    <gcsan_pyg.nn.GCSAN.hparams>` without :obj:`num_items`).

    Raises:
        ValueError: an option has no RecBole counterpart (all are listed).
    """
    unknown = sorted(str(name) for name in options if name not in _RECBOLE_NAME)
    if unknown:
        raise ValueError(f"options {unknown} have no RecBole counterpart")
    return {_RECBOLE_NAME[name]: value for name, value in options.items()}


def recbole_name(option: str) -> str:
    r"""The RecBole config name of our :obj:`option` (``"num_heads"`` ->
    ``"n_heads"``).

    Raises:
        KeyError: :obj:`option` has no RecBole counterpart.
    """
    return _RECBOLE_NAME[option]


def recbole_inter_fields(config: Mapping[str, Any]) -> dict[str, str]:
    r"""The ``.inter`` field names a RecBole config reads, as the options of
    :class:`~gcsan_pyg.data.RecBoleInterDataset`: :obj:`user_field`,
    :obj:`item_field`, :obj:`time_field` (``USER_ID_FIELD``,
    ``ITEM_ID_FIELD``, ``TIME_FIELD``; RecBole's defaults where absent)."""
    names = {"user_field": ("USER_ID_FIELD", "user_id"),
             "item_field": ("ITEM_ID_FIELD", "item_id"),
             "time_field": ("TIME_FIELD", "timestamp")}
    return {ours: str(config.get(name) or default) for ours, (name, default) in names.items()}


# RecBole data settings -> the value under which RecBoleInterDataset builds the
# same samples (RecBole's defaults, or the sequential leave-one-out protocol).
_REPRODUCED: dict[str, tuple[Any, ...]] = {
    "rm_dup_inter": (None,),
    "val_interval": (None, {}),
    "user_inter_num_interval": (None, "[0,inf)"),
    "item_inter_num_interval": (None, "[0,inf)"),
    "benchmark_filename": (None,),
    "alias_of_item_id": (None, []),
}


def recbole_data_differences(config: Mapping[str, Any]) -> list[str]:
    r"""The data settings of a RecBole config under which its samples differ
    from :class:`~gcsan_pyg.data.RecBoleInterDataset`'s (which reproduces
    RecBole's leave-one-out of time-ordered sequences, ``eval_args`` =
    ``{split: {LS: valid_and_test}, order: TO}``, full-sort evaluation, with
    no filtering).

    Args:
        config (Mapping): a RecBole config (e.g. a checkpoint's).

    Returns:
        One line per differing setting (empty when RecBole's metrics can be
        reproduced from the same ``.inter`` file).
    """
    out = [
        f"{name} = {config[name]!r} (reproduced: {' or '.join(map(repr, values))})"
        for name, values in _REPRODUCED.items()
        if config.get(name) not in values
    ]
    eval_args = config.get("eval_args") or {}
    mode = eval_args.get("mode", "full")
    test_mode = mode.get("test", "full") if isinstance(mode, Mapping) else mode
    for name, value, wanted in (
        ("split", eval_args.get("split"), {"LS": "valid_and_test"}),
        ("order", eval_args.get("order"), "TO"),
        ("mode (test)", test_mode, "full"),
    ):
        if value != wanted:
            out.append(f"eval_args {name} = {value!r} (reproduced: {wanted!r})")
    return out
