"""Dataset catalog: names, resolution, errors, download via a local server, real data."""
import hashlib
import http.server
import os
import threading
import time
import zipfile
from functools import partial

import pytest

from dglcleaner.data import catalog, dataset_names, load_dataset
from dglcleaner.errors import DataError, ParameterError, UnknownNameError

TU = {  # same toy as test_readers.py: triangle, empty graph, one edge
    "A": "1, 2\n2, 1\n2, 3\n3, 2\n1, 3\n3, 1\n4, 5\n5, 4\n",
    "graph_indicator": "1\n1\n1\n3\n3\n",
    "graph_labels": "-1\n1\n-1\n",
}

BITCOIN_TOY = "2\n2 0\n0 1 1\n1 1 0\n3 1\n0 2 1 2\n0 1 0\n0 1 0\n"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("DGLCLEANER_DATA_DIR", "DGLCLEANER_DOWNLOAD_BASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DGLCLEANER_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_names_and_unknown():
    assert dataset_names() == ["synthetic", "AIDS", "COLLAB", "Fingerprint", "Bitcoin", "NCI1"]
    with pytest.raises(UnknownNameError) as err:
        load_dataset("Fingerprnt")
    assert "Did you mean 'Fingerprint'" in str(err.value) and "NCI1" in str(err.value)
    with pytest.raises(ParameterError, match="num_graphs, seed"):
        load_dataset("synthetic", bogus=1)


def test_synthetic_by_name():
    ds = load_dataset("SYNTHETIC", num_graphs=20, seed=1)
    assert len(ds) == 20 and ds.name == "synthetic"


def test_missing_folder_message(clean_env):
    with pytest.raises(DataError) as err:
        load_dataset("aids", data_dir=clean_env / "nowhere", download=False)
    msg = str(err.value)
    assert "nowhere" in msg and "DGLCLEANER_DATA_DIR" in msg and "--data-dir" in msg
    assert "\n" not in msg


def test_data_dir_folder_case_insensitive_and_zip(clean_env):
    folder = clean_env / "data" / "aids"
    folder.mkdir(parents=True)
    for part, text in TU.items():
        (folder / f"AIDS_{part}.txt").write_text(text)
    assert len(load_dataset("AIDS", clean_env / "data", download=False)) == 3
    zdir = clean_env / "zips"
    zdir.mkdir()
    with zipfile.ZipFile(zdir / "NCI1.zip", "w") as zf:
        for part, text in TU.items():
            zf.writestr(f"NCI1/NCI1_{part}.txt", text)
    os.environ["DGLCLEANER_DATA_DIR"] = str(zdir)
    try:
        assert load_dataset("nci1", download=False).num_classes == 2
    finally:
        del os.environ["DGLCLEANER_DATA_DIR"]


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

    handler = partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_http_with_sha(clean_env, server, monkeypatch):
    root, base = server
    (root / "bitcoin.txt").write_text(BITCOIN_TOY)
    monkeypatch.setenv("DGLCLEANER_DOWNLOAD_BASE", base)
    # the real checksum does not match the toy file: refused, nothing cached
    with pytest.raises(DataError, match="sha256"):
        load_dataset("bitcoin")
    assert not list((clean_env / "cache").rglob("bitcoin.txt"))
    sha = hashlib.sha256(BITCOIN_TOY.encode()).hexdigest()
    monkeypatch.setitem(catalog.SOURCES, "Bitcoin", dict(catalog.SOURCES["Bitcoin"], sha256=sha))
    ds = load_dataset("bitcoin")
    assert len(ds) == 2 and (clean_env / "cache" / "Bitcoin" / "bitcoin.txt").is_file()
    assert not list((clean_env / "cache").rglob("*.part"))
    (root / "bitcoin.txt").unlink()  # second load comes from the cache
    assert len(load_dataset("Bitcoin")) == 2


def test_download_file_url_tu_zip(clean_env, monkeypatch):
    mirror = clean_env / "m"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "Fingerprint.zip", "w") as zf:
        for part, text in TU.items():
            zf.writestr(f"Fingerprint/Fingerprint_{part}.txt", text)
    monkeypatch.setenv("DGLCLEANER_DOWNLOAD_BASE", mirror.as_uri())
    ds = load_dataset("fingerprint", fingerprint_subset=False)
    assert len(ds) == 2  # empty graph dropped
    assert (clean_env / "cache" / "Fingerprint.zip").is_file()


def test_download_failure_names_url(clean_env, monkeypatch):
    monkeypatch.setenv("DGLCLEANER_DOWNLOAD_BASE", (clean_env / "empty").as_uri())
    with pytest.raises(DataError) as err:
        load_dataset("NCI1")
    assert "NCI1.zip" in str(err.value) and "\n" not in str(err.value)


# ---- real data (skipped unless DGLCLEANER_DATA_DIR is set) ---------------------------------
needs_data = pytest.mark.skipif(not os.environ.get("DGLCLEANER_DATA_DIR"),
                                reason="DGLCLEANER_DATA_DIR not set")


def _load(name, **kw):
    t = time.perf_counter()
    ds = load_dataset(name, download=False, **kw)
    print(f"{name}: {time.perf_counter() - t:.2f} s")
    return ds


@needs_data
def test_real_aids():
    ds = _load("AIDS")
    assert len(ds) == 2000 and ds.num_classes == 2 and ds.stats()["class_counts"] == [400, 1600]
    assert ds.stats()["avg_edges"] == pytest.approx(16.195)


@needs_data
def test_real_fingerprint_subset():
    ds = _load("Fingerprint")
    counts = dict(zip((ds.label_names[i] for i in range(4)), ds.stats()["class_counts"]))
    assert len(ds) == 1661 and counts == {4: 538, 0: 517, 5: 497, 2: 109}  # W, L, R, A
    assert ds.avg_nodes == pytest.approx(8.15, abs=0.01)
    assert len(_load("Fingerprint", fingerprint_subset=False)) == 2800 - 651


@needs_data
def test_real_bitcoin_nci1():
    b = _load("Bitcoin")
    assert len(b) == 1174 and b.stats()["class_counts"] == [845, 329]
    n = _load("NCI1")
    assert len(n) == 4110 and n.stats()["class_counts"] == [2053, 2057]


@needs_data
@pytest.mark.slow
def test_real_collab():
    ds = _load("COLLAB")
    assert len(ds) == 5000 and ds.stats()["class_counts"] == [2600, 775, 1625]
    # 2837 self-loops of the file are dropped: 12288916 - 2837 undirected edges
    assert sum(g.num_edges() for g in ds.graphs) == 2 * (12288916 - 2837)
