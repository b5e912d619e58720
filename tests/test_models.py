import pytest
import torch

from cifarlab.models import MODELS, build_model, count_params


@pytest.mark.parametrize("name", list(MODELS))
def test_model_shapes_finite_and_backward(name):
    torch.manual_seed(0)
    model = build_model(name, 100)
    x = torch.randn(4, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (4, 100) and torch.isfinite(logits).all()
    # logits, not probabilities or ReLU outputs: some must be negative
    assert (logits < 0).any()
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]  # fastnet freezes its stem, BN scales
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name,classes,expected", [("cnn", 100, 2_215_940), ("cnn", 10, 2_169_770),
                                                   ("mlp", 10, 1_708_810)])
def test_seed_parameter_counts(name, classes, expected):
    assert count_params(build_model(name, classes)) == expected


def test_unknown_model_lists_choices():
    with pytest.raises(KeyError, match="valid models: mlp, cnn"):
        build_model("vgg", 10)
