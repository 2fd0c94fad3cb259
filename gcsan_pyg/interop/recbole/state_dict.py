"""GCSAN parameters <-> RecBole ``GCSAN`` state-dict keys, from one table.

:func:`recbole_key_table` lists, for every parameter of
:class:`~gcsan_pyg.nn.GCSAN`, the RecBole key(s) holding it; both directions
(:func:`to_recbole_state_dict`, :func:`load_recbole_state_dict`) read that
one table. The only parameter that is not renamed one to one is the fused
query/key/value projection ``qkv`` of each attention layer: RecBole's
``query``, ``key`` and ``value`` stacked along dim 0.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from gcsan_pyg.interop.recbole.config import recbole_name
from gcsan_pyg.nn.gcsan import GCSAN

__all__ = [
    "REQUIRED_HYPERPARAMETERS",
    "recbole_key_table",
    "recbole_num_layers",
    "check_recbole_keys",
    "to_recbole_state_dict",
    "load_recbole_state_dict",
    "gcsan_from_recbole_state_dict",
]

#: The GCSAN arguments that change a model's scores but cannot be read off
#: its weights (dropouts, initialisation and loss settings do not change them).
REQUIRED_HYPERPARAMETERS = ("num_heads", "num_steps", "attention_weight", "activation",
                            "layer_norm_eps")

# (our name, RecBole's names); "{p}" stands for both "weight" and "bias".
_MODEL_KEYS = (
    ("item_embedding.weight", ("item_embedding.weight",)),
    ("gnn.weight_ih", ("gnn.w_ih",)),
    ("gnn.weight_hh", ("gnn.w_hh",)),
    ("gnn.bias_ih", ("gnn.b_ih",)),
    ("gnn.bias_hh", ("gnn.b_hh",)),
    ("gnn.lin_in.{p}", ("gnn.linear_edge_in.{p}",)),
    ("gnn.lin_out.{p}", ("gnn.linear_edge_out.{p}",)),
)
# Per attention layer n: ours under "encoder.layers.{n}.", RecBole's under
# "self_attention.layer.{n}.".
_LAYER_KEYS = (
    ("qkv.{p}", ("multi_head_attention.query.{p}", "multi_head_attention.key.{p}",
                 "multi_head_attention.value.{p}")),
    ("attn_out.{p}", ("multi_head_attention.dense.{p}",)),
    ("attn_norm.{p}", ("multi_head_attention.LayerNorm.{p}",)),
    ("ffn_in.{p}", ("feed_forward.dense_1.{p}",)),
    ("ffn_out.{p}", ("feed_forward.dense_2.{p}",)),
    ("ffn_norm.{p}", ("feed_forward.LayerNorm.{p}",)),
)
_LAYER_KEY = re.compile(r"^self_attention\.layer\.(\d+)\.")


def recbole_key_table(num_layers: int) -> list[tuple[str, tuple[str, ...]]]:
    r"""Every parameter name of a :class:`~gcsan_pyg.nn.GCSAN` with
    :obj:`num_layers` attention layers, with the RecBole ``GCSAN`` key(s)
    holding it; several keys are stacked along dim 0 in ours.

    Args:
        num_layers (int): the number of self-attention layers.

    Returns:
        A list of :obj:`(our_name, recbole_names)`.
    """
    rows = [(ours, theirs) for ours, theirs in _MODEL_KEYS]
    for n in range(num_layers):
        rows += [(f"encoder.layers.{n}.{ours}",
                  tuple(f"self_attention.layer.{n}.{key}" for key in theirs))
                 for ours, theirs in _LAYER_KEYS]
    return [
        (ours.format(p=part), tuple(key.format(p=part) for key in theirs))
        for ours, theirs in rows
        for part in (("weight", "bias") if "{p}" in ours else ("",))
    ]


def recbole_num_layers(state_dict: Mapping[str, Any]) -> int:
    """The number of attention layers a RecBole GCSAN state dict's keys name
    (the highest ``self_attention.layer.<n>`` plus one)."""
    found = (_LAYER_KEY.match(key) for key in state_dict)
    return max((int(match.group(1)) + 1 for match in found if match), default=0)


def check_recbole_keys(state_dict: Mapping[str, Any], num_layers: int) -> None:
    r"""Checks that :obj:`state_dict` holds exactly the keys of RecBole's
    ``GCSAN`` with :obj:`num_layers` attention layers.

    Raises:
        ValueError: naming the missing and the unexpected keys.
    """
    expected = {key for _, keys in recbole_key_table(num_layers) for key in keys}
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise ValueError(
            f"RecBole GCSAN state_dict ({num_layers} attention layer(s)) does not match: "
            f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}, unexpected "
            f"keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"
        )


def to_recbole_state_dict(model: GCSAN) -> dict[str, Tensor]:
    r""":obj:`model`'s parameters under the key names of RecBole's ``GCSAN``
    (detached copies), e.g. for ``recbole.model.sequential_recommender.GCSAN
    .load_state_dict`` or :class:`~gcsan_pyg.reference.DenseGCSAN`.

    Args:
        model (GCSAN): the model.

    Returns:
        A dict of RecBole key -> tensor.
    """
    ours = model.state_dict()
    table = recbole_key_table(model.num_layers)
    unmapped = sorted(set(ours) - {name for name, _ in table})
    if unmapped:  # a parameter was added to GCSAN without a RecBole key here
        raise RuntimeError(f"GCSAN parameters {unmapped} have no RecBole key in the table")
    return {
        key: part.detach().clone()
        for name, keys in table
        for key, part in zip(keys, ours[name].chunk(len(keys), dim=0))
    }


def load_recbole_state_dict(model: GCSAN, state_dict: Mapping[str, Tensor]) -> None:
    r"""Loads a RecBole ``GCSAN`` :obj:`state_dict` into :obj:`model`.

    Args:
        model (GCSAN): the model, of the checkpoint's sizes.
        state_dict (Mapping): RecBole key -> tensor.

    Raises:
        ValueError: a key is missing or unexpected, or a value is not a
            tensor of the shape :obj:`model` expects.
    """
    check_recbole_keys(state_dict, model.num_layers)
    for key, value in to_recbole_state_dict(model).items():
        given = state_dict[key]
        if not isinstance(given, Tensor) or given.shape != value.shape:
            shape = tuple(given.shape) if isinstance(given, Tensor) else type(given).__name__
            raise ValueError(
                f"RecBole key '{key}' has shape {shape}, this model expects {tuple(value.shape)}"
            )
    model.load_state_dict({
        name: torch.cat([state_dict[key] for key in keys])
        for name, keys in recbole_key_table(model.num_layers)
    })


def gcsan_from_recbole_state_dict(
    state_dict: Mapping[str, Tensor],
    num_items: int | None = None,
    **hyperparameters: Any,
) -> GCSAN:
    r"""A :class:`~gcsan_pyg.nn.GCSAN` holding a RecBole ``GCSAN``
    :obj:`state_dict`.

    The sizes are read off the tensors: :obj:`num_items` and
    :obj:`hidden_channels` (``item_embedding.weight``), :obj:`num_layers`
    (the ``self_attention.layer.<n>`` keys) and :obj:`inner_channels`
    (``feed_forward.dense_1``). The arguments that change the scores but are
    not in the tensors, :data:`REQUIRED_HYPERPARAMETERS` (:obj:`num_heads`,
    :obj:`num_steps`, :obj:`attention_weight`, :obj:`activation`,
    :obj:`layer_norm_eps`),
    must be given; they come from the RecBole config the weights were trained
    with, e.g. ``gcsan_from_recbole_state_dict(sd,
    **recbole_hyperparameters(config))``.

    Args:
        state_dict (Mapping): RecBole key -> tensor.
        num_items (int, optional): checked against the item table.
        **hyperparameters: the other :class:`~gcsan_pyg.nn.GCSAN` arguments;
            sizes given here are checked against the tensors.

    Returns:
        The model (in training mode, as constructed).

    Raises:
        ValueError: a required argument is missing (all are named), a given
            size differs from the tensors', or the keys or shapes are not
            those of RecBole's GCSAN.
    """
    table = state_dict.get("item_embedding.weight")
    if not isinstance(table, Tensor) or table.dim() != 2:
        raise ValueError("RecBole state_dict lacks a 2-D 'item_embedding.weight'")
    num_layers = recbole_num_layers(state_dict)
    check_recbole_keys(state_dict, num_layers)
    sizes = {"num_items": table.size(0), "hidden_channels": table.size(1),
             "num_layers": num_layers}
    if num_layers:
        inner = state_dict["self_attention.layer.0.feed_forward.dense_1.weight"]
        sizes["inner_channels"] = inner.size(0)
    given = dict(hyperparameters, **({} if num_items is None else {"num_items": num_items}))
    conflicts = [f"{name}={given[name]} does not match the state_dict's {value}"
                 for name, value in sizes.items() if name in given and given[name] != value]
    if conflicts:
        raise ValueError("; ".join(conflicts))
    missing = [name for name in REQUIRED_HYPERPARAMETERS if name not in hyperparameters]
    if missing:
        raise ValueError(
            f"a RecBole state_dict does not reveal {missing}, which change GCSAN's scores: "
            f"pass them (RecBole config {[recbole_name(name) for name in missing]}), e.g. "
            "gcsan_from_recbole_state_dict(state_dict, **recbole_hyperparameters(config))"
        )
    model = GCSAN(**{**sizes, **given})
    load_recbole_state_dict(model, state_dict)
    return model
