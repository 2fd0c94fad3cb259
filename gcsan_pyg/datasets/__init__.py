"""The session data sets, one per file, on :class:`~gcsan_pyg.data.SessionDataset`."""
from gcsan_pyg.datasets.click_log import ClickCSVDataset
from gcsan_pyg.datasets.diginetica import DigineticaRawDataset
from gcsan_pyg.datasets.recbole_inter import RecBoleInterDataset, leave_one_out
from gcsan_pyg.datasets.resolve import load_dataset, resolve_dataset_class
from gcsan_pyg.datasets.srgnn_raw import SRGNNRawDataset
from gcsan_pyg.datasets.srgnn_text import SRGNNTextDataset
from gcsan_pyg.datasets.synthetic import SyntheticDataset
from gcsan_pyg.datasets.yoochoose import YoochooseRawDataset

__all__ = [
    "SRGNNTextDataset",
    "SRGNNRawDataset",
    "DigineticaRawDataset",
    "YoochooseRawDataset",
    "ClickCSVDataset",
    "RecBoleInterDataset",
    "SyntheticDataset",
    "leave_one_out",
    "resolve_dataset_class",
    "load_dataset",
]
