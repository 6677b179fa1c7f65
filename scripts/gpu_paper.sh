#!/usr/bin/env bash
# The paper scale's prequential runs (Table 2's switch codes need them) on a one-GPU machine, in short commands.
# docs/PAPER_SCALE.md gives the exact device-tool calls, the carry lists and the time limits.
#
# Here, on the development machine (the checkout's root):
#   scripts/gpu_paper.sh prepare          data packs into .packs/ (ignored through .git/info/exclude, with .gpu_out/),
#                                         and .packs/source.json: the commit the tree comes from (for provenance)
#   scripts/gpu_paper.sh unpack TAR...    extract returned tars (oldest first) into .gpu_out/, to carry for a resume
#   scripts/gpu_paper.sh merge            copy the finished paper results of .gpu_out/ into results/ (never over an
#                                         existing file), then compute the switch codes from them here
# There, on the GPU machine (PYTHONPATH=., no install; writes $OUT/log and $OUT/<command>.tar.gz of .gpu_out/;
# a trial here: OUT=/tmp/out DEVICE=cpu scripts/gpu_paper.sh mnist 30):
#   scripts/gpu_paper.sh mnist   [BUDGET_S]   MNIST prequential jobs, 2 workers (default budget 190 s; call <= 240 s)
#   scripts/gpu_paper.sh cifar10 [BUDGET_S]   CIFAR-10 prequential jobs, 5 workers (default 420 s; call <= 480 s)
#   scripts/gpu_paper.sh resume  [BUDGET_S]   every prequential job not finished in the carried .gpu_out/ (default 520 s)
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python  # here; there the tree has no venv

ignore() {  # ignore a folder of the checkout without touching .gitignore
    mkdir -p .git/info
    grep -qxF "/$1/" .git/info/exclude 2>/dev/null || echo "/$1/" >> .git/info/exclude
}

prepare() {
    ignore .packs && ignore .gpu_out || exit 1
    $PY -m mdl_utils.data pack .packs --root "${MDL_DATA:-../shared/data}" || exit 1
    $PY - <<'PYEOF' || exit 1
import json, subprocess
run = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, check=True).stdout
dirty = sorted(line[3:] for line in run("status", "--porcelain", "--untracked-files=no", "--", "mdl_utils").splitlines())
json.dump({"git_commit": run("rev-parse", "HEAD").strip(), "git_dirty": dirty}, open(".packs/source.json", "w"))
print(f"source: {run('rev-parse', 'HEAD').strip()}, modified in mdl_utils: {dirty or 'none'}")
PYEOF
    du -sh .packs/* && git status --short --ignored .packs .gpu_out
}

on_gpu() {  # NAME BUDGET WORKERS ONLY...: run the jobs, stop by the budget, tar .gpu_out/ into $OUT
    local name=$1 budget=$2 workers=$3 status
    shift 3
    [ -n "${OUT:-}" ] || { echo "error: OUT is unset; this runs on the GPU machine (set OUT=/some/dir to try it here)"; exit 2; }
    export PYTHONUNBUFFERED=1 PYTHONPATH=. MDL_DATA=.packs MDL_OFFLINE=1 MDL_CACHE=/tmp/mdl_cache \
           MDL_SOURCE=.packs/source.json CUBLAS_WORKSPACE_CONFIG=:4096:8
    mkdir -p .gpu_out/results
    set -o pipefail
    { nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>&1
      $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
      $PY -m mdl_utils.jobs run --scale paper --chapters prequential --only "$@" --workers "$workers" \
          --budget "$budget" --partial --device "${DEVICE:-cuda}" --out .gpu_out/results
    } 2>&1 | tee "$OUT/log"
    status=$?
    cp "$OUT/log" ".gpu_out/log-$name.txt"
    tar -czf "$OUT/$name.tar.gz" .gpu_out/results .gpu_out/log-*.txt && ls -l "$OUT"
    exit $status
}

unpack() {
    ignore .gpu_out || exit 1
    for tarball in "$@"; do tar -xzf "$tarball" || exit 1; done
    find .gpu_out -name '*.json' -path '*prequential*' | sort
}

merge() {
    mkdir -p results/prequential
    cp -nv .gpu_out/results/prequential/*-paper*.json .gpu_out/results/prequential/*-paper*.npy results/prequential/ || exit 1
    $PY -m mdl_utils.jobs run --scale paper --chapters switch --out results
}

case "${1:-}" in
    prepare) prepare ;;
    mnist)   on_gpu mnist "${2:-190}" 2 mnist/prequential ;;
    cifar10) on_gpu cifar10 "${2:-420}" 5 cifar10/prequential ;;
    resume)  on_gpu resume "${2:-520}" 7 mnist/prequential cifar10/prequential ;;
    unpack)  shift; unpack "$@" ;;
    merge)   merge ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
esac
