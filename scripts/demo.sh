#!/usr/bin/env bash
# `make demo`: record a baseline, ablate dropout against it and print the comparison,
# on the smoke profile (about a minute on a laptop CPU), with no network needed.
# Everything lands in ./sweep-demo (an MLflow SQLite store + artifacts).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sweep="$here/.venv/bin/sweep"
demo_dir=${DEMO_DIR:-$here/sweep-demo}
mkdir -p "$demo_dir"
cd "$demo_dir"

# The corpus: tiny-shakespeare, shipped inside the package (checked against its sha256).
export MLFLOW_TRACKING_URI="sqlite:///$demo_dir/mlflow.db"

echo "== sweep baseline --profile smoke --seeds 2"
"$sweep" baseline --profile smoke --seeds 2
echo
echo "== sweep ablate --knob dropout --values 0.0,0.1,0.2"
"$sweep" ablate --knob dropout --values 0.0,0.1,0.2
echo
echo "== sweep best"
"$sweep" best
run_id=$("$sweep" best | sed -n 's/^best run: .*(\(.*\))$/\1/p')
echo
echo "== sweep sample --run $run_id --max-new-tokens 200"
"$sweep" sample --run "$run_id" --max-new-tokens 200
echo
echo "Recorded in $demo_dir. Browse it: cd $demo_dir && $sweep ui   (then open http://127.0.0.1:5000)"
