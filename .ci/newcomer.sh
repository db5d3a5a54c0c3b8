#!/usr/bin/env bash
# The newcomer path, scripted (issue 9): in a copy of the repository,
# `gleaner new konnector` -> the tree builds and lists the new slug -> its
# test fails until filled in -> a cassette recorded from its sandbox ->
# the one documented edit -> its test passes offline, and nothing outside
# the konnector's folder, fixtures and test was touched.
#
# Reuses CARGO_TARGET_DIR (debug builds) so only the workspace's own crates
# are rebuilt. Fails loudly naming the step that broke.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
jobs="${CARGO_BUILD_JOBS:-2}"
began=$SECONDS
work=$(mktemp -d)
sandbox_pid=""
step_name="setup"

cleanup() {
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -INT "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "newcomer path FAILED at step: $step_name" >&2' ERR

step() {
  step_name="$*"
  echo "== newcomer: $* ($((SECONDS - began)) s)"
}
fail() {
  echo "newcomer path FAILED at step: $step_name: $*" >&2
  exit 1
}

# The binary of the tree as it is: `.ci/run` built it for the demo and the
# tests (a build in the copy would rebuild every workspace crate once more,
# for nothing: the build with the new konnector below proves the copy
# builds).
gleaner="$CARGO_TARGET_DIR/debug/gleaner"
if [ ! -x "$gleaner" ]; then
  step "build the tree as it is"
  (cd "$repo" && cargo build -q -j "$jobs" -p gleaner)
fi
cp "$gleaner" "$work/gleaner-before"
gleaner="$work/gleaner-before"

step "copy the working tree to $work/repo"
mkdir "$work/repo"
(cd "$repo" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -cf - -T - 2>/dev/null) \
  | tar -xf - -C "$work/repo"
cd "$work/repo"
git init -q
git add -A
git -c user.name=newcomer -c user.email=newcomer@example.invalid commit -qm "before the newcomer"

# The copy shares the target dir: this makes konnectors/build.rs regenerate
# its module list (absolute paths) here, and again back in the original.
export GLEANER_WORKSPACE_COPY="$work/repo"
export GLEANER_HOME="$work/home"

step "gleaner new konnector acme-telco --category telco --kind html"
"$gleaner" new konnector acme-telco --category telco --kind html

step "cargo build with the new konnector"
cargo build -q -j "$jobs" -p gleaner
gleaner="$CARGO_TARGET_DIR/debug/gleaner"

step "gleaner konnectors lists acme-telco"
"$gleaner" konnectors | tee "$work/konnectors.txt"
grep -q "acme-telco" "$work/konnectors.txt" || fail "acme-telco is not listed"

step "the generated test fails until it is filled in"
if cargo test -q -j "$jobs" -p gleaner-konnectors --test acme_telco >"$work/test1.txt" 2>&1; then
  cat "$work/test1.txt"
  fail "the generated test passed before any cassette was recorded"
fi
grep -q "no cassette in fixtures/acme-telco/cassettes" "$work/test1.txt" || {
  cat "$work/test1.txt"
  fail "the generated test failed, but not for want of a cassette"
}
grep -q "gleaner run <account> --record fixtures/acme-telco/cassettes" "$work/test1.txt" \
  || fail "the failure does not say how to record a cassette"

step "gleaner sandbox acme-telco --json --port 0"
"$gleaner" sandbox acme-telco --json --port 0 >"$work/sandbox.json" &
sandbox_pid=$!
for _ in $(seq 1 200); do
  [ -s "$work/sandbox.json" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || fail "the sandbox exited"
  sleep 0.05
done
line=$(head -n1 "$work/sandbox.json")
[ -n "$line" ] || fail "the sandbox printed no JSON line"
json_get() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$line"; }
url=$(json_get url)
login=$(json_get login)
password=$(json_get password)
[ -n "$url" ] && [ -n "$login" ] && [ -n "$password" ] || fail "cannot read url/login/password from: $line"

step "gleaner accounts add acme-telco --endpoint $url"
"$gleaner" accounts add acme-telco --endpoint "$url" --label acme \
  --field "login=$login" --field "password=$password"

step "gleaner run acme --record fixtures/acme-telco/cassettes"
mkdir -p fixtures/acme-telco/cassettes
"$gleaner" run acme --record fixtures/acme-telco/cassettes | tee "$work/run.txt"
ls fixtures/acme-telco/cassettes/acme-telco-*.json >/dev/null || fail "no cassette was written"
if grep -rq -- "$password" fixtures/acme-telco/cassettes; then
  fail "the cassette holds the sandbox's password"
fi

step "stop the sandbox"
kill -INT "$sandbox_pid"
wait "$sandbox_pid" || fail "the sandbox did not stop cleanly on SIGINT"
sandbox_pid=""

step "fill in the test's TODO (the one documented edit)"
sed -i 's/^const EXPECTED_BILLS: Option<u64> = None;.*/const EXPECTED_BILLS: Option<u64> = Some(2);/' \
  konnectors/tests/acme_telco.rs
grep -q "Some(2)" konnectors/tests/acme_telco.rs || fail "the TODO line was not found"

step "the generated test passes offline"
cargo test -q -j "$jobs" -p gleaner-konnectors --test acme_telco

step "cargo fmt --check on the new files"
cargo fmt --all --check

step "files touched outside the konnector's folder, fixtures and test"
outside=$(git status --porcelain --untracked-files=all \
  | cut -c4- \
  | grep -v -e '^konnectors/src/telco/acme_telco/' -e '^fixtures/acme-telco/' -e '^konnectors/tests/acme_telco\.rs$' || true)
if [ -n "$outside" ]; then
  echo "$outside" >&2
  fail "files touched outside the folder"
fi
echo "files touched outside the folder: none"

step "gleaner new konnector acme-api --category bank --kind json builds and its sandbox test passes"
"$gleaner" new konnector acme-api --category bank --kind json >/dev/null
cargo test -q -j "$jobs" -p gleaner-konnectors --test acme_api -- a_run_against_the_sandbox

echo "== newcomer path passed in $((SECONDS - began)) s"
