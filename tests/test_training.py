import pytest
import torch

from mdl_utils import data, models, training
from mdl_utils.bits import codelength_bits


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
    assert codelength_bits(fits[0], d.y) < 0.7 * 2000 * 3.3219


def test_fit_uses_the_given_loss_and_parameter_groups():
    d = data.load("synthetic", "train", n=300, seed=0)
    net = models.build("mlp", (data.SYNTHETIC_DIM,), d.K, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    # a loss with zero gradient moves nothing (Adam without weight decay)
    training.fit(net, d.x, d.y, epochs=2, val_fraction=0.0, patience=None, device="cpu",
                 loss=lambda m, xb, yb: 0.0 * m(xb).sum())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # lr 0 for the first layer's parameters: they stay, the others move
    first = [net[1].weight, net[1].bias]
    rest = [p for p in net.parameters() if all(p is not q for q in first)]
    training.fit(net, d.x, d.y, epochs=1, val_fraction=0.0, patience=None, device="cpu",
                 param_groups=[{"params": first, "lr": 0.0}, {"params": rest}])
    after = net.state_dict()
    assert torch.equal(after["1.weight"], before["1.weight"]) and not torch.equal(after["4.weight"], before["4.weight"])


def test_fit_early_stopping_restores_the_best_epoch():
    d = data.load("synthetic", "train", n=400, seed=0)
    net = models.build("mlp", (data.SYNTHETIC_DIM,), d.K, seed=0)
    fr = training.fit(net, d.x, d.y, epochs=30, lr=3e-2, val_fraction=0.25, patience=2, device="cpu")
    assert fr.epochs_run - fr.best_epoch == 2 and fr.epochs_run < 30  # stopped by patience
    best = min(fr.history["val_loss"])
    assert fr.history["val_loss"][fr.best_epoch - 1] == best
    val = torch.nn.functional.cross_entropy(training.predict_logits(net, d.x[300:], "cpu"), d.y[300:]).item()
    assert val == best  # the weights of the best epoch were restored
