#!/usr/bin/env bash
# Run a dglcleaner command with the core and plugins of an older commit, in this
# environment (same torch, DGL and data), to tell a code change from a machine change.
#
#   bash benchmarks/at_commit.sh 6ac48c9 run benchmarks/configs/table3.yaml --db /tmp/at.sqlite \
#     --set 'datasets=[AIDS]' --set 'attacks=[{name: motif-ba, label: Motif-BA}]' \
#     --set 'defenses=[{name: gcleaner, label: GCleaner}]' --set 'seeds=[2]'
#
# The commit is checked out as a git worktree under ${TMPDIR:-/tmp}; its dglcleaner/ and
# plugins/ (as dglcleaner_plugins) go first on PYTHONPATH, so the installed entry points
# resolve to its modules. A plugin the commit lacks fails when used; options the commit's
# CLI lacks (e.g. --threads before 10b958f) are refused by it, so set OMP_NUM_THREADS.
# The command runs inside the worktree, so relative config paths are the commit's.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: bash benchmarks/at_commit.sh COMMIT DGLCLEANER-ARGS..." >&2; exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
sha=$(git -C "$repo" rev-parse --verify --quiet "$1^{commit}") \
  || { echo "at_commit: '$1' is not a commit of $repo" >&2; exit 2; }
shift
base=${TMPDIR:-/tmp}/dglcleaner-at-${sha:0:12}
[ -d "$base/tree" ] || git -C "$repo" worktree add --force --detach -q "$base/tree" "$sha"
mkdir -p "$base/path"
ln -sfn "$base/tree/dglcleaner" "$base/path/dglcleaner"
ln -sfn "$base/tree/plugins" "$base/path/dglcleaner_plugins"
cd "$base/tree"
PYTHONPATH="$base/path" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} exec dglcleaner "$@"
