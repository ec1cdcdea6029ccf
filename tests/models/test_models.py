import pytest
import torch

from dglcleaner._dgl import dgl
from dglcleaner.errors import UnknownNameError
from dglcleaner.models import MODEL_NAMES, build_from_config, build_model


def _batch():
    g1 = dgl.graph(([0, 1, 1, 2, 2, 0], [1, 0, 2, 1, 0, 2]))
    g2 = dgl.graph(([0, 1], [1, 0]), num_nodes=3)  # one isolated node
    return dgl.batch([g1, g2])


@pytest.mark.parametrize("arch", MODEL_NAMES)
def test_logits_embeddings_and_edge_weight_gradients(arch):
    torch.manual_seed(0)
    bg = _batch()
    x = torch.randn(bg.num_nodes(), 5)
    model = build_model(arch, 5, 3).eval()
    w = torch.rand(bg.num_edges(), requires_grad=True)
    out = model.forward_full(bg, x, w)
    assert out.logits.shape == (2, 3) and out.graph_emb.shape == (2, 64)
    assert len(out.layers) == len(model.conv_layers()) == model.num_layers
    out.logits[:, 0].sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0  # trigger edges can learn
    # eweight alias (DGL explainers) and no mutation of the graph
    assert torch.allclose(model(bg, x, eweight=w.detach()), model(bg, x, w.detach()))
    assert set(bg.edata.keys()) == set()


@pytest.mark.parametrize("arch", MODEL_NAMES)
def test_config_round_trip(arch):
    model = build_model(arch, 4, 2, hidden=16)
    clone = build_from_config(model.config())
    clone.load_state_dict(model.state_dict())
    assert clone.config() == model.config()


def test_unknown_model_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'gin'"):
        build_model("gni", 3, 2)
