"""The book's networks table (mdl_utils.tables.networks) agrees with the model registry and the chapters' settings."""

from mdl_utils import models
from mdl_utils.codes import prequential as P
from mdl_utils.tables import networks

ROWS = {r["network"]: r for r in networks.network_rows()}


def test_every_architecture_has_a_row_and_the_paper_network_it_stands_for():
    assert list(ROWS) == list(models.ARCHITECTURES)
    assert all(networks.PAPER_NETWORK.get(name) for name in models.ARCHITECTURES)


def test_parameter_counts_match_the_layers_counted_by_hand():
    mlp = (784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    lenet = (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (16 * 4 * 4 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    cifar_mlp = (3072 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10)
    assert ROWS["mlp"]["parameters"] == {"mnist": mlp, "cifar10": cifar_mlp}
    assert ROWS["lenet"]["parameters"]["mnist"] == lenet
    assert ROWS["vgg_cifar"]["parameters"]["mnist"] is None  # five 2x2 pools do not fit 28 x 28


def test_every_prequential_run_of_the_chapter_is_listed_under_its_network():
    for scale in ("cpu", "paper"):
        s = P.settings(scale)
        for dataset in ("mnist", "cifar10"):
            for run in s.models[dataset] + s.ablations.get(dataset, ()):
                arch = s.recipe(dataset, run, 2).model
                listed = [w.split(" (")[0] for w in ROWS[arch][f"{scale}_runs"]]
                assert run in listed, (scale, run, arch)
    assert "cnn4_warm (shifts <= 2 px)" in ROWS["cnn4"]["cpu_runs"]
    assert ROWS["mlp"]["chapters"] == [2, 5, 6, 7, 9] and ROWS["mlp3x200"]["chapters"] == [8]
