#!/usr/bin/env bash
# Builds the fuzz targets and runs each for FUZZ_SECONDS (default 30) on the
# stored corpus (fuzz/corpus/<target>) and its regressions
# (fuzz/regressions/<target>), one target at a time. Fails on the first
# crash, panic or broken property; libFuzzer keeps the input under
# fuzz/artifacts/<target>/.
#
# Only the stable toolchain is needed: RUSTC_BOOTSTRAP=1 lets cargo fuzz pass
# -Zsanitizer=address to the stable compiler (see docs/fuzzing.md). Set
# FUZZ_SANITIZER=none to build without AddressSanitizer, and FUZZ_DEV=1 to
# build without optimisations (short smoke runs: the optimised build of the
# whole dependency tree takes minutes more, and a 10 s run needs no speed;
# long runs keep the optimised build).
#
# CI no longer calls this script (its sanitized build cost about 8 of CI's
# minutes): `cargo test --workspace` replays the stored corpus and
# regressions through the same checks (fuzz-checks/tests/corpus.rs). Run it
# by hand, e.g. FUZZ_SECONDS=10 FUZZ_DEV=1 fuzz/run-ci.sh.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-address}"
profile=()
if [ "${FUZZ_DEV:-0}" = "1" ]; then
  profile=(--dev)
fi
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
  exit 1
fi

targets=$(cargo fuzz list)
cargo fuzz build "${profile[@]}" --sanitizer "$sanitizer"

for target in $targets; do
  echo "== fuzz $target for ${seconds}s"
  scratch=$(mktemp -d)
  dirs=("$scratch" "corpus/$target")
  if [ -d "regressions/$target" ]; then
    dirs+=("regressions/$target")
  fi
  # The repository's own real inputs seed the targets too (read only, not
  # copied into the corpus): provider pages and JSON, the manifests.
  case "$target" in
    free_mobile_pages) dirs+=("../fixtures/free-mobile") ;;
    enedis_map) dirs+=("../fixtures/enedis") ;;
    manifest) dirs+=("../konnectors/src/telco/free_mobile" "../konnectors/src/energy/enedis") ;;
  esac
  # New inputs go to a scratch directory first in the list, so the stored
  # corpus stays as committed. The HTML pages need more than the default
  # 4 KiB inputs.
  extra=()
  if [ -f "$target.dict" ]; then
    extra+=("-dict=$target.dict")
  fi
  log="$scratch.log"
  status=0
  cargo fuzz run "${profile[@]}" --sanitizer "$sanitizer" "$target" "${dirs[@]}" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+ +DONE|^stat::number_of_executed_units' "$log" || true
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    rm -f "$log"
    echo "fuzz target $target failed (exit $status); the input is under fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
  rm -f "$log"
done
echo "== all fuzz targets ran ${seconds}s without a crash"
