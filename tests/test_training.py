import pytest
import torch

from mdl_utils import data, models, training


def test_resolve_device():
    assert training.resolve_device("cpu").type == "cpu"
    assert training.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='auto'"):
            training.resolve_device("cuda")


def test_models_by_name_are_seeded():
    a = models.build("logistic", (1, 28, 28), 10, seed=1)
    b = models.build("logistic", (1, 28, 28), 10, seed=1)
    c = models.build("logistic", (1, 28, 28), 10, seed=2)
    assert models.num_parameters(a) == 784 * 10 + 10
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[1].weight, c[1].weight)
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        models.build("resnet", (3,), 2)


def test_full_batch_fit_is_deterministic_and_learns():
    d = data.load("synthetic", "train", n=2000, seed=0)
    fits = []
    for _ in range(2):
        net = models.build("logistic", (data.SYNTHETIC_DIM,), d.K, seed=0)
        training.fit_full_batch(net, d.x, d.y, weight_decay=1e-3, max_iter=50, device="cpu")
        fits.append(training.predict_logits(net, d.x, "cpu"))
    assert torch.equal(fits[0], fits[1])
    from mdl_utils.codes.shannon import codelength_bits

    assert codelength_bits(fits[0], d.y) < 0.7 * 2000 * 3.3219
