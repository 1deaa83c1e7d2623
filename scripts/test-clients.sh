#!/usr/bin/env bash
# Builds the generated clients in clients/{node,go,java} and runs each one's end-to-end test
# against a `smarttrade serve` it starts itself (a free port, a temporary data directory).
#
#   scripts/test-clients.sh [node] [go] [java]     (default: all three)
#
# Installs what a language needs only when it is missing: Debian packages with apt-get (root, or
# sudo without a password), the npm packages of clients/node from its lock file. A toolchain that
# cannot be installed fails the run under CI (CI=true) and is reported as skipped elsewhere.
# Reads no standard input. Ends with "clients: N passed, N failed[, N skipped]".
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
exec </dev/null

languages=("$@")
[ ${#languages[@]} -gt 0 ] || languages=(node go java)

# The Debian packages of each toolchain (bookworm). Go builds in GOPATH mode against Debian's Go
# libraries (the module proxy is unreachable); golang-github-golang-protobuf-1-5-dev, not
# golang-goprotobuf-dev, which panics at run time. Java compiles with javac against
# /usr/share/java (Maven Central is unreachable); see clients/java/classpath.sh.
go_packages=(
  golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
  golang-google-genproto-dev protoc-gen-go protoc-gen-go-grpc protobuf-compiler
)
java_packages=(
  openjdk-17-jdk-headless protobuf-compiler protobuf-compiler-grpc-java-plugin libgrpc-java
  libprotobuf-java libguava-java libnetty-java libperfmark-java libgeronimo-annotation-1.3-spec-java
  liberror-prone-java
)
node_packages=(nodejs npm)

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT

say() { printf '== %s\n' "$*"; }

# Runs a command quietly; on failure prints the tail of its output.
quietly() {
  local log="$log_dir/step.log" status=0
  "$@" >"$log" 2>&1 || status=$?
  [ "$status" -eq 0 ] || tail -n 40 "$log" >&2
  return "$status"
}

missing_packages() {
  local package
  for package in "$@"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null | grep -q '^ii' || echo "$package"
  done
}

apt_updated=""
install_packages() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "not root and no sudo: cannot install ${missing[*]}" >&2; return 1; }
    sudo=(sudo -n)
  fi
  say "apt-get install ${missing[*]}"
  if [ -z "$apt_updated" ]; then
    quietly timeout 600 "${sudo[@]}" apt-get update -q || return 1
    apt_updated=1
  fi
  quietly timeout 900 "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

install_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    install_packages "${node_packages[@]}" || return 1
  fi
  # npm ci only when the lock file changed since the last install: a warm run installs nothing.
  local stamp
  stamp="clients/node/node_modules/.installed-$(sha256sum clients/node/package-lock.json | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "npm ci (clients/node)"
    (cd clients/node && quietly timeout 900 npm ci --no-audit --no-fund) || return 1
    touch "$stamp"
  fi
}
build_node() { (cd clients/node && npm run --silent build); }
test_node() { (cd clients/node && timeout 600 npm test --silent); }

install_go() { install_packages "${go_packages[@]}"; }
build_go() { clients/go/build.sh; }
test_go() { timeout 600 clients/go/test.sh; }

install_java() { install_packages "${java_packages[@]}"; }
build_java() { clients/java/build.sh; }
test_java() { timeout 600 clients/java/test.sh; }

# The service the tests start, installed (or left as it is) by the project's own bootstrap.
scripts/bootstrap.sh
export SMARTTRADE_BIN="$root/.venv/bin/smarttrade"

passed=0 failed=0 skipped=0
failures=()
for language in "${languages[@]}"; do
  case "$language" in node | go | java) ;; *) echo "unknown client: $language" >&2; exit 2 ;; esac
  started=$SECONDS
  say "$language: install"
  if ! "install_$language"; then
    if [ "${CI:-}" = true ]; then
      echo "$language: its toolchain could not be installed; CI does not skip a client" >&2
      failed=$((failed + 1)) failures+=("$language (install)")
    else
      echo "$language: SKIPPED, its toolchain could not be installed (under CI=true this fails)" >&2
      skipped=$((skipped + 1))
    fi
    continue
  fi
  say "$language: build"
  if ! "build_$language"; then
    failed=$((failed + 1)) failures+=("$language (build)")
    continue
  fi
  say "$language: end-to-end test"
  if "test_$language"; then
    passed=$((passed + 1))
    say "$language: passed in $((SECONDS - started)) s"
  else
    failed=$((failed + 1)) failures+=("$language (test)")
  fi
done

[ ${#failures[@]} -eq 0 ] || echo "failed: ${failures[*]}" >&2
summary="clients: $passed passed, $failed failed"
[ "$skipped" -eq 0 ] || summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
