"""Fixtures: a tiny grid document and a throw-away plugin distribution on sys.path."""
import sys
import textwrap

import pytest

PLUGIN_SRC = '''
import time
import torch
from dglcleaner.api import DefenseResult, PluginBase, ThreatModel
from dglcleaner.params import Param


class _Base(PluginBase):
    kind = "defense"
    task = "graph"
    summary = "test plugin"
    paper = "-"
    threat_model = ThreatModel.POST_TRAINING


class Broken(_Base):
    name = "broken-test"

    def run(self, ctx):
        raise RuntimeError("boom from a broken plugin")


class NaNDefense(_Base):
    name = "nan-test"

    def run(self, ctx):
        import copy
        model = copy.deepcopy(ctx.model)
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return DefenseResult(model=model)


class Mutate(_Base):
    name = "mutate-test"

    def run(self, ctx):
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.mul_(0.0)
        return DefenseResult(model=ctx.model)


class Sleep(_Base):
    name = "sleep-test"
    params = (Param("seconds", float, 1.0, "sleep time", low=0.0, high=60.0),)

    def run(self, ctx):
        time.sleep(self.seconds)
        return DefenseResult(model=ctx.model)
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A folder holding module ``gridtest_plugins`` and its dist-info (entry points)."""
    root = tmp_path / "plugdist"
    root.mkdir()
    (root / "gridtest_plugins.py").write_text(PLUGIN_SRC)
    info = root / "gridtest_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gridtest-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [dglcleaner.defenses]
        broken-test = gridtest_plugins:Broken
        nan-test = gridtest_plugins:NaNDefense
        mutate-test = gridtest_plugins:Mutate
        sleep-test = gridtest_plugins:Sleep
        """))
    monkeypatch.syspath_prepend(str(root))
    yield root
    sys.modules.pop("gridtest_plugins", None)


def tiny_doc(**over):
    doc = {
        "name": "tiny",
        "datasets": ["synthetic"],
        "attacks": ["sub-ba"],
        "defenses": [{"name": "none", "label": "Before"},
                     {"name": "finetune", "params": {"epochs": 1}}],
        "seeds": 1,
        "settings": {"train": {"epochs": 2}},
    }
    doc.update(over)
    return doc
