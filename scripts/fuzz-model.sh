#!/usr/bin/env bash
# Long run of the topology loader's property tests (crates/plumb/tests/model_properties.rs):
# mutated examples, generated topologies and random text, as TOML and as JSON. The loader must
# never panic, must answer the same twice, and every diagnostic must lie inside the text.
#
#   scripts/fuzz-model.sh                        # 100000 cases per property, release build
#   PROPTEST_CASES=1000000 scripts/fuzz-model.sh # longer
#   scripts/fuzz-model.sh loader_random_json     # one property (a cargo test name filter)
#
# A failing case is shrunk, printed, and saved in crates/plumb/tests/model_properties.proptest-regressions,
# which every later run (plain `cargo test` too) tries first. Turn it into a plain regression test
# in the same file once the bug is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
exec cargo test --release -p plumb --test model_properties -- "$@"
