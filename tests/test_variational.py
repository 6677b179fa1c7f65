"""The variational (bits-back) code: closed-form KL, the bound L_var >= L_Bayes, collapse to the prior."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from mdl_utils import bayesian as B
from mdl_utils import data, models
from mdl_utils.codes import variational as V
from .reference import set_posterior

LN2 = math.log(2.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_closed_form_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(50, generator=g, dtype=torch.float64) * 0.3
    sigma = torch.rand(50, generator=g, dtype=torch.float64) * 0.3 + 0.02
    sigma0 = 0.2
    closed = float(B.kl_gaussian_bits(mu, sigma, sigma0))
    theta = mu + sigma * torch.randn(200_000, 50, generator=g, dtype=torch.float64)
    log_q = (-0.5 * ((theta - mu) / sigma) ** 2 - torch.log(sigma)).sum(1)
    log_p = (-0.5 * (theta / sigma0) ** 2 - math.log(sigma0)).sum(1)
    per_draw = (log_q - log_p) / LN2
    mc, se = float(per_draw.mean()), float(per_draw.std() / math.sqrt(len(per_draw)))
    assert abs(closed - mc) < 4 * se + 1e-6, (closed, mc, se)
    # KL vanishes when beta = alpha, and is in bits (not nats): one coordinate, mu = sigma0, sigma = sigma0 -> 1/2 nat
    assert float(B.kl_gaussian_bits(torch.zeros(3), torch.full((3,), 0.2), 0.2)) == pytest.approx(0, abs=1e-6)
    assert float(B.kl_gaussian_bits(torch.tensor([0.2]), torch.tensor([0.2]), 0.2)) == pytest.approx(0.5 / LN2)
    with pytest.raises(ValueError):
        B.kl_gaussian_bits(mu, sigma, 0.0)


def test_softplus_inverse_round_trip():
    for s in (1e-4, 1e-3, 0.1, 2.0):
        assert float(torch.nn.functional.softplus(torch.tensor(B.softplus_inverse(s), dtype=torch.float64))) == \
            pytest.approx(s, rel=1e-9)


# ------------------------------------------------- one-parameter logistic model


class PadZero(nn.Module):
    """Logits [0, a]: p(y = 1 | x) = sigmoid(a)."""

    def forward(self, a):
        return torch.cat([torch.zeros_like(a), a], 1)


def _one_param_problem(n=100, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-1.5 * x))).astype(np.int64)
    return x, y


def _sum_bits(theta, x, y):
    """sum_i -log2 p_theta(y_i | x_i) for each theta of a 1-d array (logistic, logits [0, theta x])."""
    a = np.outer(theta, x)
    return (np.logaddexp(0, a) - a * y).sum(1) / LN2


def _exact_bayes_bits(x, y, sigma0):
    theta = np.linspace(-12, 12, 48001)
    log_joint = -_sum_bits(theta, x, y) * LN2 - 0.5 * (theta / sigma0) ** 2 - math.log(sigma0 * math.sqrt(2 * math.pi))
    m = log_joint.max()
    integral = np.trapezoid(np.exp(log_joint - m), theta)
    return -(m + math.log(integral)) / LN2


def _expected_bits(mu, sigma, x, y):
    """E_{theta ~ N(mu, sigma^2)}[sum -log2 p] by Gauss-Hermite quadrature (exact to ~1e-10 here)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    return float((weights * _sum_bits(mu + sigma * nodes, x, y)).sum() / weights.sum())


def test_variational_codelength_is_above_exact_bayes_and_close():
    x, y = _one_param_problem()
    sigma0 = 1.0
    net = nn.Sequential(B.BayesLinear(1, 1, bias=False), PadZero())
    xt, yt = torch.tensor(x, dtype=torch.float32)[:, None], torch.tensor(y)
    V.fit_posterior(net, xt, yt, sigma0=sigma0, epochs=500, batch_size=len(y), lr=0.05, lr_rho=0.05, seed=0)
    with torch.no_grad():
        mu, sigma = [(m.item(), s.item()) for m, s in net[0].posteriors()][0]
        kl = B.kl_bits(net, sigma0).item()
    l_var = kl + _expected_bits(mu, sigma, x, y)
    l_bayes = _exact_bayes_bits(x, y, sigma0)
    assert l_bayes <= l_var <= l_bayes + 2.0, (l_bayes, l_var, mu, sigma)
    # the library's Monte Carlo estimate of E_beta[L] agrees with quadrature
    ev = V.evaluate(net, xt, yt, sigma0=sigma0, samples=400, seed=0)
    assert ev["kl_bits"] == pytest.approx(kl)
    assert abs(ev["data_bits"] - (l_var - kl)) < 4 * ev["data_bits_se"] + 0.05
    # a poorly placed posterior is strictly worse: the bound is not trivially met
    bad = (float(B.kl_gaussian_bits(torch.tensor([mu + 2.0]), torch.tensor([sigma]), sigma0))
           + _expected_bits(mu + 2.0, sigma, x, y))
    assert bad > l_var + 5


def test_posterior_collapsed_to_prior_gives_prior_expected_codelength():
    x, y = _one_param_problem(n=60, seed=1)
    sigma0 = 0.7
    net = nn.Sequential(B.BayesLinear(1, 1, bias=False), PadZero())
    set_posterior(net, mu=0.0, sigma=sigma0)
    assert float(B.kl_bits(net, sigma0).detach()) == pytest.approx(0.0, abs=1e-4)
    xt, yt = torch.tensor(x, dtype=torch.float32)[:, None], torch.tensor(y)
    ev = V.evaluate(net, xt, yt, sigma0=sigma0, samples=1000, seed=3)
    prior_expected = _expected_bits(0.0, sigma0, x, y)  # E_alpha[L_theta(y|x)]
    assert abs(ev["data_bits"] - prior_expected) < 4 * ev["data_bits_se"], (ev["data_bits"], prior_expected)
    # Jensen: E_alpha[L_theta] >= -log2 E_alpha[p_theta] = L_Bayes
    assert prior_expected >= _exact_bayes_bits(x, y, sigma0)


def test_collapsed_mlp_matches_an_independent_prior_sample_estimate():
    ds = data.load("synthetic", "train", n=300, seed=0)
    sigma0 = 0.1
    net = set_posterior(models.build("mlp", ds.x.shape[1:], ds.K, seed=0, bayesian=True), mu=0.0, sigma=sigma0)
    assert float(B.kl_bits(net, sigma0).detach()) == pytest.approx(0.0, abs=0.05)  # float32 rounding over 73k weights
    ev = V.evaluate(net, ds.x, ds.y, sigma0=sigma0, samples=60, seed=0)
    # independent: weights drawn directly from alpha = N(0, sigma0^2), plain tensor algebra
    g = torch.Generator().manual_seed(99)
    shapes = [(ds.x.shape[1], 256), (256, 256), (256, ds.K)]
    totals = []
    for _ in range(60):
        h = ds.x.double()
        for k, (a, b) in enumerate(shapes):
            h = h @ (sigma0 * torch.randn(a, b, generator=g, dtype=torch.float64)) \
                + sigma0 * torch.randn(b, generator=g, dtype=torch.float64)
            h = torch.relu(h) if k < 2 else h
        totals.append(float(nn.functional.cross_entropy(h, ds.y, reduction="sum")) / LN2)
    ref, ref_se = np.mean(totals), np.std(totals, ddof=1) / math.sqrt(len(totals))
    assert abs(ev["data_bits"] - ref) < 4 * math.hypot(ev["data_bits_se"], ref_se), (ev["data_bits"], ref)


def test_local_reparameterization_has_the_right_mean_and_variance():
    torch.manual_seed(0)
    layer = B.BayesLinear(5, 3, init_sigma=0.3)
    x = torch.randn(1, 5).expand(40000, 5)
    out = layer(x).detach()
    w_s, b_s = [s.detach() for _, s in layer.posteriors()]
    mean = (x[0] @ layer.weight_mu.detach().T + layer.bias_mu.detach())
    var = (x[0] ** 2) @ (w_s ** 2).T + b_s ** 2
    assert torch.allclose(out.mean(0), mean, atol=5 * float(var.max().sqrt()) / 200)
    assert torch.allclose(out.var(0), var, rtol=0.05)


def test_variational_code_result_and_determinism():
    train = data.load("synthetic", "train", n=300, seed=0)
    test = data.load("synthetic", "test", n=200, seed=0)
    s = dataclasses.replace(V.settings("smoke"), sigma0_grid=(0.1, 0.3), eval_samples=3)
    r = V.variational_code(train, test, "logistic", s, epochs=2, scale="smoke", device="cpu", progress=False)
    assert r.code == "variational" and r.model == "logistic" and r.n == 300 and r.K == 10
    p, draws = r.parts, np.asarray(r.curves["final_eval"]["data_bits_draws"])
    # L = KL + log2 |grid| (the choice of sigma0) + the mean over draws of the data bits, each draw's sum
    assert r.codelength_bits == pytest.approx(p["kl_divergence_bits"] + math.log2(2) + draws.mean(), rel=1e-12)
    assert p["data_bits_se"] == pytest.approx(draws.std(ddof=1) / math.sqrt(len(draws)), rel=1e-12)
    assert 0 <= r.test_accuracy <= 1
    assert r.params["sigma0"] in (0.1, 0.3)
    chosen = min(r.curves["grid"], key=lambda e: e["codelength_bits"])
    assert chosen["sigma0"] == r.params["sigma0"]
    assert len(r.curves["epoch"]) == 2
    again = V.variational_code(train, test, "logistic", s, epochs=2, scale="smoke", device="cpu", progress=False)
    assert again.codelength_bits == r.codelength_bits
    with pytest.raises(ValueError, match="sigma0_grid"):
        V.variational_code(train, test, "logistic", dataclasses.replace(s, sigma0_grid=()), epochs=2, scale="smoke")


def test_bayesian_models_come_from_the_one_registry():
    with pytest.raises(ValueError, match="unknown model"):
        models.build("resnet", (20,), 10, bayesian=True)
    with pytest.raises(ValueError, match="image inputs"):
        models.build("lenet", (20,), 10, bayesian=True)
    with pytest.raises(ValueError, match="batch norm"):
        models.build("vgg_cifar_bn", (3, 32, 32), 10, bayesian=True)
    assert models.fits("lenet", (1, 28, 28)) and not models.fits("lenet", (20,))
    # the Bayesian lenet has the plain lenet's layers and initial means, and no dropout
    plain, bayes = models.build("lenet", (1, 28, 28), 10, seed=3), models.build("lenet", (1, 28, 28), 10, seed=3,
                                                                                  bayesian=True)
    means = [layer.weight_mu for layer in B.bayesian_layers(bayes)]
    weights = [m.weight for m in plain if hasattr(m, "weight")]
    assert len(means) == len(weights) == 5 and all(torch.equal(a, b) for a, b in zip(means, weights))
    mlp = models.build("mlp", (20,), 10, bayesian=True)
    assert not any(isinstance(m, nn.Dropout) for m in mlp) and B.num_weights(mlp) == models.num_parameters(
        models.build("mlp", (20,), 10))


def test_the_reported_codelength_is_re_estimated_on_fresh_draws(monkeypatch):
    """sigma0 is chosen on the grid's Monte Carlo estimates; the minimum of noisy estimates is optimistic, so the
    reported E_beta must come from other, independently seeded and more numerous draws of the chosen posterior."""
    calls = []
    real = V.evaluate

    def spy(net, x, y, **kw):
        out = real(net, x, y, **kw)
        calls.append({**kw, "draws": out["data_bits_draws"], "data_bits": out["data_bits"], "n": len(y)})
        return out

    monkeypatch.setattr(V, "evaluate", spy)
    train = data.load("synthetic", "train", n=300, seed=0)
    s = dataclasses.replace(V.settings("smoke"), sigma0_grid=(0.1, 0.3), eval_samples=3, final_eval_samples=7)
    r = V.variational_code(train, None, "logistic", s, epochs=2, scale="smoke", device="cpu", progress=False)
    selection, final = calls[:2], calls[2]
    assert [c["samples"] for c in calls] == [3, 3, 7] and final["n"] == 300
    assert final["seed"] == V.final_draw_seed(0) and final["seed"] not in {c["seed"] for c in selection}
    assert not set(final["draws"]) & {d for c in selection for d in c["draws"]}  # no draw reused
    chosen = min(r.curves["grid"], key=lambda e: e["codelength_bits"])
    assert r.params["sigma0"] == chosen["sigma0"] == r.curves["final_eval"]["sigma0"]
    assert r.parts["data_bits"] == final["data_bits"] == r.curves["final_eval"]["data_bits"]
    assert r.parts["data_bits"] != chosen["data_bits"]  # not the selection's own estimate ...
    assert r.parts["selection_codelength_bits"] == pytest.approx(chosen["codelength_bits"])  # ... which is kept
    assert r.parts["data_bits"] == pytest.approx(np.mean(r.curves["final_eval"]["data_bits_draws"]), rel=1e-12)
    assert r.parts["prior_choice_bits"] == 1.0 and len(r.curves["final_eval"]["data_bits_draws"]) == 7
    assert r.params["final_eval_samples"] == 7 and "7 fresh draws" in r.params["reported_estimate"]
    assert "fresh draws" in r.note


def test_final_draw_seeds_differ_from_every_selection_and_test_seed():
    finals = {V.final_draw_seed(seed) for seed in range(100)}
    assert len(finals) == 100 and not finals & set(range(102))
    for scale in ("smoke", "cpu", "paper"):
        s = V.settings(scale)
        assert s.final_eval_samples >= 2 * s.eval_samples, scale
