import os

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
    training.fit(net, d.x, d.y, training.FitOptions(epochs=2, val_fraction=0.0, patience=None), device="cpu",
                 loss=lambda m, xb, yb: 0.0 * m(xb).sum())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # lr 0 for the first layer's parameters: they stay, the others move
    first = [net[1].weight, net[1].bias]
    rest = [p for p in net.parameters() if all(p is not q for q in first)]
    training.fit(net, d.x, d.y, training.FitOptions(epochs=1, val_fraction=0.0, patience=None), device="cpu",
                 param_groups=[{"params": first, "lr": 0.0}, {"params": rest}])
    after = net.state_dict()
    assert torch.equal(after["1.weight"], before["1.weight"]) and not torch.equal(after["4.weight"], before["4.weight"])


def test_fit_early_stopping_restores_the_best_epoch():
    d = data.load("synthetic", "train", n=400, seed=0)
    net = models.build("mlp", (data.SYNTHETIC_DIM,), d.K, seed=0)
    fr = training.fit(net, d.x, d.y, training.FitOptions(epochs=30, lr=3e-2, val_fraction=0.25, patience=2),
                      device="cpu")
    assert fr.epochs_run - fr.best_epoch == 2 and fr.epochs_run < 30  # stopped by patience
    best = min(fr.history["val_loss"])
    assert fr.history["val_loss"][fr.best_epoch - 1] == best
    val = torch.nn.functional.cross_entropy(training.predict_logits(net, d.x[300:], "cpu"), d.y[300:]).item()
    assert val == best  # the weights of the best epoch were restored


# ------------------------------------------------ step budgets, schedules, continuing (issue 16)


def test_step_budget():
    assert training.step_budget(300, 32, 3) == 3 * 10
    assert training.step_budget(300, 32, 3, min_steps=50) == 50  # small training sets get enough steps
    assert training.step_budget(300, 32, 3, max_steps=7) == 7
    assert training.step_budget(300, 32, None, max_steps=7) == 7
    assert training.step_budget(0, 32, 3, min_steps=50) == 0  # nothing to train on
    with pytest.raises(ValueError, match="epochs or max_steps"):
        training.step_budget(300, 32, None)


def test_cosine_learning_rate():
    f = [training.lr_factor("cosine", s, 4) for s in (1, 2, 3, 4)]
    assert f[0] == 1.0 and f[2] == pytest.approx(0.5) and f == sorted(f, reverse=True) and f[-1] > 0
    assert training.lr_factor("constant", 3, 4) == 1.0
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        training.lr_factor("linear", 1, 4)


def _fit(**kw):
    d = data.load("synthetic", "train", n=400, seed=0)
    net = models.build("mlp", (data.SYNTHETIC_DIM,), d.K, seed=0)
    calls = []
    fr = training.fit(net, d.x, d.y, training.FitOptions(batch_size=32, lr=3e-2, val_fraction=0.25, **kw),
                      device="cpu", on_epoch_end=lambda e, m: calls.append(e))
    return net, fr, calls, d


def test_evaluations_every_k_steps_and_min_steps_before_stopping():
    _, fr, calls, _ = _fit(epochs=3, patience=None, eval_every=4)  # 300 training samples: 10 steps an epoch
    assert fr.steps_run == 30 and fr.epochs_run == 8 and calls == list(range(9))  # at 4, 8, ..., 28 and 30
    assert len(fr.history["val_loss"]) == 8 and fr.samples_trained == 3 * 300
    _, fr, _, _ = _fit(epochs=30, patience=1)
    assert fr.steps_run < 100  # stops early
    _, late, _, _ = _fit(epochs=30, patience=1, min_steps=100)
    assert late.steps_run >= 100 and late.epochs_run - late.best_epoch >= 1


def test_last_weights_kept_without_restore_best():
    net, fr, _, d = _fit(epochs=6, patience=None, restore_best=False, schedule="cosine")
    val = torch.nn.functional.cross_entropy(training.predict_logits(net, d.x[300:], "cpu"), d.y[300:]).item()
    assert val == fr.history["val_loss"][-1] and fr.best_epoch == fr.epochs_run == 6
    assert fr.optimizer.param_groups[0]["lr"] == pytest.approx(3e-2 * training.lr_factor("cosine", 60, 60))


def test_continuing_an_optimizer_keeps_its_state_and_restarts_its_learning_rate():
    net, fr, _, d = _fit(epochs=2, patience=None, schedule="cosine")
    opt = fr.optimizer
    first = next(iter(opt.state.values()))["step"].item()
    again = training.fit(net, d.x, d.y, training.FitOptions(epochs=1, batch_size=32, val_fraction=0.25, patience=None),
                         device="cpu", optimizer=opt)
    assert again.optimizer is opt and next(iter(opt.state.values()))["step"].item() == first + 10
    assert opt.param_groups[0]["lr"] == 3e-2  # constant schedule: back at the first learning rate


def test_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    assert torch.equal(training.augment_batch(x, g, pad=0, flip=False), x)
    flipped = training.augment_batch(x, torch.Generator().manual_seed(1), pad=0, flip=True)
    assert all(torch.equal(f, o) or torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x))
    moved = training.augment_batch(x, torch.Generator().manual_seed(2), pad=1, flip=False, fill=-7.0)
    assert set(moved.unique().tolist()) <= set(x.unique().tolist()) | {-7.0}
    shift = training.augmenter(training.Augmentation(shift=1, flip=False, fill="min"), x - 3)
    assert shift(x - 3, torch.Generator().manual_seed(2)).min() == -3  # padded with the inputs' minimum
    assert training.augmenter(False, x) is None
    with pytest.raises(ValueError, match="unknown augmentation fill"):
        training.augmenter(training.Augmentation(fill="mean"), x)


def test_bf16_autocast_training_is_deterministic_and_differs_from_float32():
    a, _, _, d = _fit(epochs=1, patience=None, bf16=True)
    b, _, _, _ = _fit(epochs=1, patience=None, bf16=True)
    c, _, _, _ = _fit(epochs=1, patience=None)
    za, zb, zc = (training.predict_logits(m, d.x[:50], "cpu") for m in (a, b, c))
    assert za.dtype == torch.float32 and torch.equal(za, zb) and not torch.equal(za, zc)


# ------------------------------------------------------------ determinism on CUDA, precision (issue 12 item 3)


@pytest.mark.parametrize("hw", [3, 4, 7])
def test_global_average_pooling_is_adaptive_average_pooling_to_the_bit_on_the_cpu(hw):
    """vgg6 pools with a mean (its CUDA backward is deterministic, adaptive_avg_pool2d's is not); on the CPU it must
    give the very numbers of nn.AdaptiveAvgPool2d(1), forward and backward, so that stored runs still reproduce."""
    from mdl_utils.models import GlobalAvgPool

    g = torch.Generator().manual_seed(hw)
    x = torch.randn(16, 32, hw, hw, generator=g)
    for xx in (x, x.contiguous(memory_format=torch.channels_last)):
        a, b = xx.clone().requires_grad_(), xx.clone().requires_grad_()
        ya, yb = torch.nn.AdaptiveAvgPool2d(1)(a), GlobalAvgPool()(b)
        grad = torch.randn(ya.shape, generator=g)
        ya.backward(grad), yb.backward(grad)
        assert torch.equal(ya, yb) and torch.equal(a.grad, b.grad)


def test_make_deterministic_sets_tf32_as_asked_and_cudnn_deterministic():
    """float32 means float32 on CUDA too (cuDNN allows TF32 by default): TF32 changes the bits a decoder retrains,
    so it is on only when a recipe asks for it, and the provenance then says so."""
    from mdl_utils.codes import prequential as P
    from mdl_utils.training import make_deterministic, precision

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # the opposite of what it sets
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    torch.use_deterministic_algorithms(False)
    make_deterministic()
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")  # set by mdl_utils.numerics at import
    make_deterministic(tf32=True)
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    make_deterministic()
    assert precision(tf32=True, device="cuda") == "tf32" and precision(tf32=True, device="cpu") == "fp32"
    assert P.settings("paper").recipe("mnist", "vgg_mnist", 100).tf32  # the GPU scale says so explicitly
    assert not P.settings("cpu").recipe("mnist", "mlp", 100).tf32


def test_a_bf16_recipe_records_its_precision_in_the_provenance():
    from mdl_utils.codes import prequential as P
    from mdl_utils.training import precision

    train = data.load("synthetic", "train", n=96)
    recipe = P.Recipe(model="logistic", timesteps=(32, 64, 96), epochs=1, bf16=True, record_epochs=False)
    r = P.prequential_code(train, None, recipe, scale="smoke", device="cpu", progress=False)
    assert r.provenance["precision"] == precision(True) != precision(False) == "fp32"
