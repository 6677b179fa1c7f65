"""Your model, your data (mdl_utils.api, mdl_utils.arrays, models.register): a network defined here, not in
mdl_utils, on NumPy features, through the prequential code, the switch, the labels file and the chapters."""

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import mdl_utils
from mdl_utils import chapters, coder, data, models
from mdl_utils.datafiles import DataUnavailableError

from .conftest import ROOT
from .test_numerics import fresh_environment

N, D, K = 400, 12, 3
STEPS = (16, 64, 160, N)


class Probe(nn.Module):
    """A probing classifier of the kind MDL probing uses: one hidden layer on embedding vectors."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.Tanh(),
                                 nn.Linear(16, num_classes))

    def forward(self, x):
        return self.net(x)


def planted(n=N, d=D, k=K, seed=0):
    """Random 'embeddings' whose labels depend on a planted linear direction (plus noise)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, k)) + 0.3 * rng.normal(size=(n, k))).argmax(1)
    return x, y


@pytest.fixture(autouse=True, scope="module")
def own_registry():
    """The networks these tests register leave the registry as they found it."""
    before = dict(models.CUSTOM)
    yield
    models.CUSTOM.clear()
    models.CUSTOM.update(before)


def test_the_api_names_shadow_no_module_of_the_package():
    """``mdl_utils.compress_labels`` is a function; ``python -m mdl_utils.compress`` stays the command line."""
    import pkgutil

    assert not set(mdl_utils.API) & {m.name for m in pkgutil.iter_modules(mdl_utils.__path__)}
    from mdl_utils import compress

    assert hasattr(compress, "main") and callable(mdl_utils.compress_labels)


@pytest.fixture(scope="module")
def features():
    return planted()


@pytest.fixture(scope="module")
def probe_run(features):
    x, y = features
    return mdl_utils.prequential(Probe, x, y, timesteps=STEPS, epochs=10, lr=1e-2, device="cpu")


def test_a_network_of_the_users_codes_the_labels_shorter_than_uniform(features, probe_run):
    x, y = features
    bits = probe_run.arrays["bits"]
    assert probe_run.model == "Probe" and probe_run.n == N and probe_run.K == K and len(bits) == N
    assert math.isclose(probe_run.codelength_bits, math.fsum(bits), rel_tol=1e-9)
    uniform = mdl_utils.uniform(y).codelength_bits
    assert uniform == pytest.approx(N * math.log2(K)) and probe_run.codelength_bits < 0.8 * uniform
    assert np.all(bits[:STEPS[0]] == pytest.approx(math.log2(K)))  # the first block: uniform, before any training
    assert probe_run.provenance["numerics"]["numerics"] == "portable"


def test_the_same_call_gives_the_same_bits(features, probe_run):
    x, y = features
    again = mdl_utils.prequential(Probe, x, y, timesteps=STEPS, epochs=10, lr=1e-2, device="cpu")
    assert np.array_equal(again.arrays["bits"], probe_run.arrays["bits"])
    other_order = mdl_utils.prequential(Probe, x, y, timesteps=STEPS, epochs=10, lr=1e-2, device="cpu", seed=1)
    assert not np.array_equal(other_order.arrays["bits"], probe_run.arrays["bits"])


def test_the_switch_is_never_much_worse_than_its_best_code(features, probe_run):
    x, y = features
    logistic = mdl_utils.prequential(lambda shape, k: nn.Sequential(nn.Flatten(), nn.Linear(D, k)), x, y,
                                     name="linear_probe", timesteps=STEPS, epochs=10, lr=1e-2, device="cpu")
    mix = mdl_utils.switch(probe_run, logistic)
    best = min(probe_run.codelength_bits, logistic.codelength_bits, N * math.log2(K))
    # the switch mixture pays at most log2(3 codes) plus its switching prior over n labels (App. E.1)
    assert mix.codelength_bits <= best + math.log2(3) + 2 * math.log2(N)
    assert mix.n == N and mix.parts["prequential_linear_probe_bits"] == logistic.codelength_bits
    with pytest.raises(ValueError, match="results of mdl_utils.prequential"):
        mdl_utils.switch(mdl_utils.uniform(y))


def test_the_labels_file_decodes_exactly_from_the_inputs_alone(features, tmp_path):
    x, y = features
    path = tmp_path / "labels.mdl"
    enc = mdl_utils.compress_labels(Probe, x, y, path, timesteps=STEPS, epochs=2)
    run = mdl_utils.prequential(Probe, x, y, timesteps=STEPS, epochs=2, device="cpu")
    assert 8 * path.stat().st_size >= run.codelength_bits  # a file cannot beat the code it writes
    assert len(enc.data) == path.stat().st_size
    assert np.array_equal(mdl_utils.decompress_labels(path, Probe, x), y)


def test_a_receiver_with_another_network_is_refused_before_the_first_label(features, tmp_path):
    x, y = features
    path = tmp_path / "labels.mdl"
    mdl_utils.compress_labels(Probe, x[:100], y[:100], path, timesteps=(16, 100), epochs=1)

    def other(shape, k):  # the same name, another network
        return nn.Sequential(nn.Flatten(), nn.Linear(D, k))

    try:
        with pytest.raises(coder.CodingError, match="Probe") as refused:
            mdl_utils.decompress_labels(path, other, x[:100], name="Probe")
        assert "\n" not in str(refused.value)
    finally:
        models.register("Probe", Probe)


def bad_network(shape, k):
    return nn.Sequential(nn.Flatten(), nn.Linear(D, k + 1))


@pytest.mark.parametrize("call, message", [
    (lambda x, y: mdl_utils.prequential(Probe, x, y[:-1]), "x has 400 rows but y has 399 labels"),
    (lambda x, y: mdl_utils.prequential(Probe, x, y - 1), "labels"),
    (lambda x, y: mdl_utils.prequential(Probe, x, y + 0.5), "integers 0..K-1"),
    (lambda x, y: mdl_utils.prequential(Probe, np.where(np.arange(N)[:, None] == 7, np.inf, x), y), "rows [7]"),
    (lambda x, y: mdl_utils.prequential(bad_network, x, y), "not (2, 3)"),
    (lambda x, y: mdl_utils.prequential(lambda s, k: "no network", x, y, name="nonet"), "not a torch.nn.Module"),
    (lambda x, y: mdl_utils.prequential("resnet1000", x, y), "unknown model 'resnet1000'"),
    (lambda x, y: mdl_utils.prequential(Probe, x, y, epocs=3), "unknown Recipe fields ['epocs']"),
    (lambda x, y: mdl_utils.prequential(Probe, x, y, timesteps=(500, 600)), "timesteps"),
])
def test_bad_input_is_one_line_that_names_the_fix(features, call, message):
    x, y = features
    with pytest.raises(ValueError) as error:
        call(x, y)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_torch_dataset_is_taken_as_it_is_iterated(features):
    x, y = features
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert np.array_equal(mdl_utils.dataset(ds, seed=None).y.numpy(), y)
    assert torch.equal(mdl_utils.dataset(ds, seed=None).x, mdl_utils.dataset(x, y, seed=None).x)


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("npz")
    x, y = planted(n=700)
    np.savez(folder / "with_test.npz", x=x[:500], y=y[:500], x_test=x[500:], y_test=y[500:])
    np.savez(folder / "no_test.npz", x=x[:500], y=y[:500])
    np.savez(folder / "bad.npz", x=x[:500], y=y[:499])
    return folder


@pytest.mark.parametrize("name", ["with_test", "no_test"])
def test_arrays_run_through_the_uniform_prequential_and_switch_chapters(npz_files, tmp_path, name):
    ds = f"npz:{npz_files / name}.npz"
    u = chapters.get("uniform", ds, "uniform", "smoke", recompute=True, root=tmp_path)
    preq = chapters.get_all("prequential", [ds], ["mlp", "mlp_warm"], "smoke", recompute=True, root=tmp_path)
    mix = chapters.get("switch", ds, "switch-mlp-mlp_warm-uniform", "smoke", recompute=True, root=tmp_path)
    assert u.n == 500 and u.codelength_bits == pytest.approx(500 * math.log2(K))
    assert all(r.n == 500 for r in preq.values())
    assert (name == "with_test") == all(r.test_accuracy is not None for r in preq.values())
    assert mix.codelength_bits <= min(r.codelength_bits for r in preq.values()) + 2 + 2 * math.log2(500)


def test_a_damaged_npz_is_one_line(npz_files, tmp_path):
    with pytest.raises(DataUnavailableError, match="500 rows but y has 499") as error:
        chapters.get("prequential", f"npz:{npz_files / 'bad.npz'}", "mlp", "smoke", recompute=True, root=tmp_path)
    assert "\n" not in str(error.value)


PLUGIN = '''
import math
from torch import nn
import mdl_utils

@mdl_utils.register_model("probe")
def probe(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 8), nn.ReLU(), nn.Linear(8, num_classes))
'''


def test_a_registered_model_reaches_the_command_lines_through_MDL_PLUGINS(npz_files, tmp_path):
    (tmp_path / "my_models.py").write_text(textwrap.dedent(PLUGIN))
    env = fresh_environment(MDL_PLUGINS="my_models", PYTHONPATH=f"{tmp_path}:{ROOT}")
    out, labels = tmp_path / "labels.mdl", tmp_path / "labels.npy"
    ds = f"npz:{npz_files / 'with_test.npz'}"
    enc = subprocess.run([sys.executable, "-m", "mdl_utils.compress", "--code", "prequential", "--dataset", ds,
                          "--model", "probe", "--scale", "smoke", "--n", "200", "--no-progress", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert enc.returncode == 0, enc.stderr
    dec = subprocess.run([sys.executable, "-m", "mdl_utils.decompress", str(out), "--dataset", ds, "--model", "probe", "--out",
                          str(labels), "--no-progress"], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert dec.returncode == 0, dec.stderr
    assert np.array_equal(np.load(labels), data.load(ds, "train", seed=0).y[:200].numpy())
    env.pop("MDL_PLUGINS")
    refused = subprocess.run([sys.executable, "-m", "mdl_utils.decompress", str(out), "--dataset", ds, "--model", "probe", "--out",
                              str(labels), "--no-progress"], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert refused.returncode != 0 and "probe" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
