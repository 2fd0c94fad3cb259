"""Everything RecBole: its ``GCSAN`` checkpoints, state dicts and config names.

* :mod:`~gcsan_pyg.interop.recbole.unpickler` -- the restricted unpickler
  that reads RecBole's pickles without importing or calling what they name,
* :mod:`~gcsan_pyg.interop.recbole.state_dict` -- GCSAN parameters <->
  RecBole state-dict keys, from one table,
* :mod:`~gcsan_pyg.interop.recbole.config` -- RecBole config names <-> GCSAN
  arguments and training options, from one table,
* :mod:`~gcsan_pyg.interop.recbole.checkpoint` -- checkpoint files, both
  directions,
* :mod:`~gcsan_pyg.interop.recbole.errors` -- their errors.

RecBole's ``.inter`` files are read, numbered and split as RecBole does by
:class:`~gcsan_pyg.data.RecBoleInterDataset`.
"""
from gcsan_pyg.interop.recbole.checkpoint import (
    RecBoleCheckpoint,
    export_recbole_checkpoint,
    gcsan_from_recbole_checkpoint,
    load_recbole_checkpoint,
)
from gcsan_pyg.interop.recbole.config import (
    MODEL_NAMES,
    TRAIN_NAMES,
    options_to_recbole,
    recbole_data_differences,
    recbole_hyperparameters,
    recbole_inter_fields,
    recbole_name,
    recbole_to_options,
)
from gcsan_pyg.interop.recbole.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
)
from gcsan_pyg.interop.recbole.state_dict import (
    REQUIRED_HYPERPARAMETERS,
    check_recbole_keys,
    gcsan_from_recbole_state_dict,
    load_recbole_state_dict,
    recbole_key_table,
    recbole_num_layers,
    to_recbole_state_dict,
)
from gcsan_pyg.interop.recbole.unpickler import ALLOWED_GLOBALS

__all__ = [
    "ALLOWED_GLOBALS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "UnsafeCheckpointError",
    "RecBoleCheckpoint",
    "load_recbole_checkpoint",
    "gcsan_from_recbole_checkpoint",
    "export_recbole_checkpoint",
    "REQUIRED_HYPERPARAMETERS",
    "recbole_key_table",
    "recbole_num_layers",
    "check_recbole_keys",
    "to_recbole_state_dict",
    "load_recbole_state_dict",
    "gcsan_from_recbole_state_dict",
    "MODEL_NAMES",
    "TRAIN_NAMES",
    "recbole_hyperparameters",
    "recbole_to_options",
    "options_to_recbole",
    "recbole_name",
    "recbole_inter_fields",
    "recbole_data_differences",
]
