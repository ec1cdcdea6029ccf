"""Readers on tiny files: TU raw (with an empty graph), TU zip, GIN text (with a self-loop)."""
import zipfile

import pytest
import torch

from dglcleaner.data import read_gin_text, read_tu_raw, read_tu_zip
from dglcleaner.errors import DataError

# Graph 1: triangle (nodes 1-3); graph 2: no nodes; graph 3: one edge (nodes 4-5).
TU = {
    "A": "1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n4, 5\n",  # last row duplicated
    "graph_indicator": "1\n1\n1\n3\n3\n",
    "graph_labels": "-1\n1\n-1\n",
    "node_labels": "7\n8\n7\n9\n7\n",
    "node_attributes": "0.5, 1.0\n1.5, 2.0\n2.5, 3.0\n3.5, 4.0\n4.5, 5.0\n",
}


def write_tu(folder, name="TOY", parts=TU):
    folder.mkdir(parents=True, exist_ok=True)
    for part, text in parts.items():
        (folder / f"{name}_{part}.txt").write_text(text)
    return folder


def check_toy(ds):
    assert len(ds) == 3
    assert [g.num_nodes() for g in ds.graphs] == [3, 0, 2]
    assert [g.num_edges() for g in ds.graphs] == [6, 0, 2]  # both directions, duplicate dropped
    assert ds.labels.tolist() == [0, 1, 0] and ds.num_classes == 2
    assert ds.label_names == {0: -1, 1: 1}
    g = ds.graphs[0]
    assert g.idtype == torch.int64
    assert g.ndata["node_label"].tolist() == [7, 8, 7]
    assert torch.allclose(g.ndata["attr"][2], torch.tensor([2.5, 3.0]))
    assert ds.graphs[2].ndata["node_label"].tolist() == [9, 7]
    assert "feat" not in g.ndata
    st = ds.stats()
    assert st["class_counts"] == [2, 1] and st["avg_edges"] == pytest.approx(4 / 3, abs=1e-3)


def test_tu_raw(tmp_path):
    check_toy(read_tu_raw(write_tu(tmp_path / "TOY"), "TOY"))


def test_tu_zip(tmp_path):
    zpath = tmp_path / "TOY.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for part, text in TU.items():
            zf.writestr(f"TOY/TOY_{part}.txt", text)
    check_toy(read_tu_zip(zpath, "TOY"))


def test_tu_unsorted_indicator(tmp_path):
    parts = dict(TU, graph_indicator="1\n3\n1\n3\n1\n", A="1, 3\n3, 1\n2, 4\n4, 2\n")
    ds = read_tu_raw(write_tu(tmp_path / "T", parts=parts), "TOY")
    assert [g.num_nodes() for g in ds.graphs] == [3, 0, 2]
    assert ds.graphs[0].ndata["node_label"].tolist() == [7, 7, 7]  # nodes 1, 3, 5
    assert ds.graphs[2].ndata["node_label"].tolist() == [8, 9]


@pytest.mark.parametrize("part,text,needle", [
    ("A", "1, 2\n2, x\n", "line 2"),
    ("A", "1, 2\n2, 1, 3\n", "TOY_A.txt"),
    ("A", "1, 2\n2, 9\n", "line 2"),
    ("A", "1, 4\n", "two different graphs"),
    ("graph_indicator", "1\n1\n1\n5\n3\n", "line 4"),
    ("node_labels", "1\n2\n", "expected 5"),
])
def test_tu_malformed(tmp_path, part, text, needle):
    folder = write_tu(tmp_path / "TOY", parts=dict(TU, **{part: text}))
    with pytest.raises(DataError) as err:
        read_tu_raw(folder, "TOY")
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_tu_missing_part(tmp_path):
    parts = {k: v for k, v in TU.items() if k != "graph_labels"}
    with pytest.raises(DataError, match="graph_labels"):
        read_tu_raw(write_tu(tmp_path / "TOY", parts=parts), "TOY")


GIN = "2\n3 1\n0 2 1 2\n1 2 0 0\n0 1 0\n2 5\n4 2 1 1\n4 1 0\n"
# graph 0: node 1 lists 0 twice (duplicate); graph 1: self-loop on node 1 plus edge 0-1


def test_gin_text(tmp_path):
    p = tmp_path / "toy.txt"
    p.write_text(GIN)
    ds = read_gin_text(p, "toy")
    assert [g.num_nodes() for g in ds.graphs] == [3, 2]
    assert [g.num_edges() for g in ds.graphs] == [4, 2]  # edges 0-1, 0-2; self-loop dropped
    src, dst = ds.graphs[1].edges()
    assert not bool((src == dst).any())
    assert ds.labels.tolist() == [0, 1] and ds.label_names == {0: 1, 1: 5}
    assert ds.graphs[0].ndata["node_label"].tolist() == [0, 1, 0]


def test_gin_text_attributes_and_odd_spacing(tmp_path):
    p = tmp_path / "attr.txt"
    p.write_text("1\r\n2  0\r\n0 1 1 0.5 1.5\r\n0 1 0 2.5 3.5\r\n")
    ds = read_gin_text(p, "attr")
    assert ds.graphs[0].num_edges() == 2
    assert ds.graphs[0].ndata["attr"].tolist() == [[0.5, 1.5], [2.5, 3.5]]


@pytest.mark.parametrize("text,needle", [
    ("2\n1 0\n0 0\n", "ends after 1 graphs"),
    ("1\n2 0\n0 1 5\n0 0\n", "line 3"),
    ("1\n2 0\n0 1 1\n0 0\nextra\n", "line 5"),
    ("x\n", "line 1"),
])
def test_gin_malformed(tmp_path, text, needle):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(DataError) as err:
        read_gin_text(p, "bad")
    assert needle in str(err.value) and "bad.txt" in str(err.value)
