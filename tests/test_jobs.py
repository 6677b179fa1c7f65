"""The job runner (mdl_utils.jobs): plan, run in worker processes within a budget, resume, Slurm through submitit."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mdl_utils import joblist, jobs, results, runner
from mdl_utils.codes import prequential, switch

from .conftest import ROOT, real_data_root

# Real MNIST when MDL_DATA holds it, else the synthetic task: either way a smoke run takes seconds.
DATASET = "mnist" if real_data_root() else "synthetic"
SEEDS = (0, 1)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m mdl_utils.jobs ARGS`` in a fresh process with one torch thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "mdl_utils.jobs", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def smoke_args(out, *extra: str) -> list[str]:
    return ["run", "--scale", "smoke", "--datasets", DATASET, "--chapters", "prequential", "switch",
            "--seeds", *map(str, SEEDS), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke-scale run of the prequential and switch jobs, 2 seeds, 2 workers, a 120 s budget."""
    out = tmp_path_factory.mktemp("jobs") / "results"
    proc = cli(*smoke_args(out, "--workers", "2", "--budget", "120"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_plan_lists_table2_prequential_runs_first_with_their_planned_work():
    js = joblist.make_jobs("paper")
    assert [j.name for j in js[:7]] == [
        "mnist/prequential/vgg_mnist", "mnist/prequential/mlp", "cifar10/prequential/vgg_cifar_bn",
        "cifar10/prequential/vgg_cifar", "cifar10/prequential/tinycnn", "cifar10/prequential/shallow",
        "cifar10/prequential/mlp"]
    chapters = [j.chapter for j in js]
    assert chapters.index("switch") == 7 and chapters.index("variational") > chapters.index("switch")
    assert chapters[-1] == "intrinsic_dimension" and "bytes" not in chapters
    # samples x max epochs over the blocks: t_1 2^k below n (t_1 = 8 on MNIST, 10 on CIFAR-10), 50 epochs
    assert joblist.planned_work(js[0]) == 50 * sum(8 * 2 ** k for k in range(13))
    assert joblist.planned_work(js[2]) == 50 * sum(10 * 2 ** k for k in range(13))
    assert joblist.planned_work(joblist.Job("two_part", "mnist", "mlp")) == 60000 * 100
    # FlopCounterMode counts 2 FLOPs per multiply-add: the mlp's three matrix products on MNIST
    assert joblist.forward_flops("mlp", (1, 28, 28), 10) == (2 * (784 * 256 + 256 * 256 + 256 * 10),
                                                          784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10)


def test_plan_cli_prints_the_table_with_estimates(tmp_path):
    proc = cli("plan", "--scale", "paper", "--only", "mnist/prequential", "--throughput", "vgg_mnist=20000",
               "1000000", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if "mnist/prequential" in line]
    assert len(rows) == 2 and "3,276,400" in rows[0] and "| 164 |" in rows[0] and "| 3 |" in rows[1]


@pytest.mark.parametrize("patterns, expected", [
    ([], True), (["mnist"], True), (["mnist/prequential"], True), (["mnist/prequential/mlp"], True),
    (["*/prequential"], True), (["cifar10"], False), (["mnist/variational"], False), (["cifar10", "mnist"], True)])
def test_only_patterns(patterns, expected):
    assert joblist.matches(joblist.Job("prequential", "mnist", "mlp"), patterns) is expected


def test_run_gives_each_result_bit_for_bit_as_compute_does(smoke_run, results_tmp):
    out, stdout = smoke_run
    assert "block 1/" in stdout and "| done |" in stdout
    for seed in SEEDS:
        job = joblist.Job("prequential", DATASET, "mlp", seed, "smoke")
        assert job.result_file(out).name.endswith("-seed1.json" if seed else "-smoke.json")
        stored = results.load_file(job.result_file(out))
        direct = prequential.compute(DATASET, "mlp", "smoke", seed=seed, progress=False)
        assert stored.codelength_bits == direct.codelength_bits and stored.seed == seed
        assert np.array_equal(np.load(results.array_path(job.result_file(out), "bits")),
                              direct.arrays["bits"].astype(np.float32))
    for seed in SEEDS:
        for _, model in switch.runs(DATASET, "smoke"):
            job = joblist.Job("switch", DATASET, model, seed, "smoke")
            expected = switch.compute(DATASET, model, "smoke", seed=seed, root=out).codelength_bits
            assert results.load_file(job.result_file(out)).codelength_bits == expected
    assert not list((out / "prequential" / ".partial").glob("*.json"))  # finished runs leave no checkpoint


def test_second_run_computes_nothing(smoke_run, capsys):
    out, _ = smoke_run
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and runner.STATE_DIR not in p.parts}
    assert jobs.main(smoke_args(out, "--workers", "2", "--budget", "120")) == 0
    table = capsys.readouterr().out
    assert table.count("stored (not run again)") == 2 * (1 + len(switch.runs(DATASET, "smoke")))
    assert "[start]" not in table and "| done |" not in table
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_budget_too_small_for_the_planned_work_runs_nothing(tmp_path, capsys):
    out = tmp_path / "results"
    args = ["run", "--scale", "smoke", "--datasets", "synthetic", "--chapters", "prequential", "--out", str(out)]
    assert jobs.main(args + ["--budget", "5", "--throughput", "100"]) == 0  # 1,890 samples x epochs at 100/s
    printed = capsys.readouterr().out
    assert "| synthetic/prequential/mlp | skipped: budget |" in printed and "[start]" not in printed
    assert not (out / "prequential").exists()
    assert json.loads((out / runner.STATE_DIR / "last_run.json").read_text())[0]["estimate_s"] == pytest.approx(18.9)


def test_deadline_stops_a_running_job_which_keeps_its_checkpoint(tmp_path, capfd):
    out = tmp_path / "results"
    job = joblist.Job("prequential", "synthetic", "mlp", 0, "cpu")
    args = ["run", "--scale", "cpu", "--datasets", "synthetic", "--only", "synthetic/prequential/mlp",
            "--out", str(out), "--throughput", "1e12", "--budget", "12", "--threads", "1"]  # ~60 s of work
    assert jobs.main(args) == 0
    printed = capfd.readouterr().out  # the worker's block lines go to the inherited file descriptor
    assert "stopped: deadline" in printed and not job.result_file(out).exists()
    kept = prequential.blocks_done("synthetic", "mlp", "cpu", root=out)
    assert kept and "block 1/13" in printed and runner.units_kept(job, out) == len(kept)
    assert joblist.planned_work(job, out=out) == joblist.planned_work(job) - 20 * sum(kept)


def test_a_dry_run_states_its_cap_and_never_counts_as_the_real_result(tmp_path):
    capped = joblist.Job("prequential", "synthetic", "mlp", 0, "paper", cap_samples=100, cap_epochs=1)
    row = runner.execute(capped, tmp_path)
    r = results.load_file(capped.result_file(tmp_path))
    assert row["status"] == "done" and r.n == 100 and r.params["epochs"] == 1 and r.scale == "paper"
    assert r.params["override"] == {"cap_samples": 100, "cap_epochs": 1} and r.note.startswith("DRY RUN")
    assert joblist.is_stored(capped, tmp_path) and not joblist.is_stored(joblist.Job("prequential", "synthetic", "mlp"),
                                                                   tmp_path)
    assert not (tmp_path / "prequential" / ".partial").exists()
    with pytest.raises(ValueError, match="implemented for prequential only, not for two_part"):
        joblist.make_jobs("paper", chapter_names=("prequential", "two_part"), cap_samples=10)


def test_probe_measures_a_positive_throughput():
    assert joblist.probe_throughput(joblist.Job("prequential", "synthetic", "mlp", scale="smoke"), "cpu",
                                 min_seconds=0.0) > 0
    assert joblist.probe_throughput(joblist.Job("two_part", "synthetic", "mlp", scale="smoke"), "cpu") is None


def test_errors_are_one_line_and_name_the_fix(capsys):
    assert jobs.main(["plan", "--only", "imagenet"]) == 2
    assert "no job matches --only imagenet; patterns are DATASET[/CHAPTER[/MODEL]]" in capsys.readouterr().err
    with pytest.raises(ValueError, match="MODEL=SAMPLES_PER_S"):
        joblist.parse_throughput(["vgg=fast"])


@pytest.mark.parametrize("args, message", [
    (["run", "--threads", "-3"], "--threads -3: give a whole number of 1 or more"),
    (["run", "--workers", "0"], "--workers 0: give a whole number of 1 or more"),
    (["plan", "--chapters", "prequential", "--cap-samples", "0"], "--cap-samples 0: give a whole number"),
    (["run", "--chapters", "prequential", "--cap-epochs", "-1"], "--cap-epochs -1: give a whole number"),
    (["plan", "--seeds", "0", "1", "0"], "--seeds 0 1 0: give each seed once"),
    (["run", "--seeds", "-2"], "--seeds -2: give each seed once, as a number from 0 to 4,294,967,295"),
])
def test_counts_are_checked_before_any_job_starts(args, message, capsys, results_tmp):
    """Else a worker fails on them, and the terminal only says 'worker exited with code 1'."""
    assert jobs.main([*args, "--scale", "smoke", "--datasets", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}" + err.split(message, 1)[1] and err.count("\n") == 1
    assert not results_tmp.exists()


def test_plan_and_run_take_the_uniform_chapter(capsys, results_tmp):
    """--chapters uniform is documented; the plan used to build a network called 'uniform'."""
    assert jobs.main(["plan", "--scale", "smoke", "--chapters", "uniform", "--datasets", "synthetic"]) == 0
    assert "synthetic/uniform/uniform" in capsys.readouterr().out
    assert jobs.main(["run", "--scale", "smoke", "--chapters", "uniform", "--datasets", "synthetic",
                      "--only", "synthetic/uniform/uniform"]) == 0
    assert results.load("uniform", "synthetic", "uniform", "smoke", root=results_tmp).codelength_bits > 0


def test_a_results_store_that_is_a_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    store = tmp_path / "results"
    store.write_text("not a folder")
    monkeypatch.setenv("MDL_RESULTS", str(store))
    assert jobs.main(["run", "--scale", "smoke", "--chapters", "uniform", "--datasets", "synthetic"]) == 2
    assert capsys.readouterr().err == (f"error: the results store {store} (MDL_RESULTS) cannot hold results: {store} "
                                       "is a file, not a folder; point MDL_RESULTS at a writable folder (created if "
                                       "missing)\n")


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None,
                    reason="submitit is not installed: pip install -e '.[slurm]' to test the Slurm executor")
def test_slurm_executor_through_submitits_local_executor(tmp_path, results_tmp):
    out = tmp_path / "results"
    proc = cli("run", "--scale", "smoke", "--datasets", "synthetic", "--chapters", "prequential", "switch",
               "--executor", "slurm", "--slurm-cluster", "local", "--gpus", "0", "--time", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[submitted] synthetic/prequential/mlp" in proc.stdout and proc.stdout.count("| done |") == 3
    stored = results.load_file(joblist.Job("prequential", "synthetic", "mlp", 0, "smoke").result_file(out))
    assert stored.codelength_bits == prequential.compute("synthetic", "mlp", "smoke", progress=False).codelength_bits
