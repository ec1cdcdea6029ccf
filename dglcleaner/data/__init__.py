"""Graph-classification data: datasets, readers, synthetic data, node features and splits.

``from dglcleaner.data import load_dataset, make_featurizer, split_dataset`` is all a run needs.
"""
from .catalog import SOURCES, cache_dir, dataset_names, download_dataset, load_dataset
from .features import FEATURE_MODES, Featurizer, copy_graph, make_featurizer
from .graph_dataset import GraphDataset
from .readers import read_gin_text, read_tu_raw, read_tu_zip
from .splits import Split, official_holding, split_dataset
from .synthetic import make_synthetic

__all__ = [
    "GraphDataset", "load_dataset", "dataset_names", "download_dataset", "cache_dir", "SOURCES",
    "read_tu_raw", "read_tu_zip", "read_gin_text", "make_synthetic",
    "Featurizer", "make_featurizer", "FEATURE_MODES", "copy_graph",
    "Split", "split_dataset", "official_holding",
]
