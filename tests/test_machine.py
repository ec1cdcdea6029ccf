"""The CPU facts recorded with every result, and how the report prints them."""
from dglcleaner.experiments.report import _cpu_text
from dglcleaner.machine import cpu_model, numerics
from dglcleaner.runner import versions


def test_numerics_names_the_cpu_the_kernels_and_mkls_mode(monkeypatch):
    monkeypatch.delenv("MKL_CBWR", raising=False)
    facts = numerics()
    assert set(facts) == {"cpu", "cpu_capability", "mkl_cbwr"}
    assert facts["cpu"] == cpu_model() and facts["cpu"]
    assert facts["cpu_capability"] not in ("", "?")  # torch 2.13 reports e.g. AVX2, AVX512
    assert facts["mkl_cbwr"] == "unset"
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert numerics()["mkl_cbwr"] == "COMPATIBLE"


def test_every_result_records_them():
    assert set(numerics()) <= set(versions())


def test_report_prints_them_only_for_rows_that_have_them():
    assert _cpu_text({"platform": "Linux"}) == ""  # rows stored before they were recorded
    text = _cpu_text({"cpu": "AMD EPYC", "cpu_capability": "AVX2", "mkl_cbwr": "unset"})
    assert text == "AMD EPYC (AVX2, MKL_CBWR unset), "
