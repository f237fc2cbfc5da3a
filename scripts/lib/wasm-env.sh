# Sourced by build-wasm.sh and test-wasm.sh (after they define ROOT and die): puts Debian's wasm32 Rust first on
# PATH and points cargo at target/wasm, the wasm32 build folder both share.
ENV_FILE="${IMGPICK_HOME:-$HOME/.cache/imgpick}/wasm.env"
[ -f "$ENV_FILE" ] || die "$ENV_FILE is missing: run scripts/setup.sh (it installs Debian's wasm32 Rust)"
# Debian's cargo/rustc 1.96 (the only compiler here with a wasm32 std) first on PATH.
# shellcheck disable=SC1090
source "$ENV_FILE"; export PATH
export CARGO_TARGET_DIR="$ROOT/target/wasm"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128"
# setup.sh compiles the wasm32 std into the system sysroot; when it is rebuilt (a new IMGPICK_HOME, a new
# Debian rustc), crates built against the old one fail with "can't find crate", and cargo does not notice.
wasm_std_id="$(cat "$(rustc --print sysroot)"/lib/rustlib/wasm32-unknown-unknown/lib/libstd-*.rlib 2>/dev/null | sha256sum | cut -c1-16)"
if [ "$(cat "$CARGO_TARGET_DIR/.wasm-std-id" 2>/dev/null)" != "$wasm_std_id" ]; then
  [ -d "$CARGO_TARGET_DIR" ] && echo "wasm: the wasm32 std changed; rebuilding $CARGO_TARGET_DIR from scratch"
  rm -rf "$CARGO_TARGET_DIR"
  mkdir -p "$CARGO_TARGET_DIR"
  echo "$wasm_std_id" >"$CARGO_TARGET_DIR/.wasm-std-id"
fi
