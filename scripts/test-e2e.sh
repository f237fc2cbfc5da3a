#!/usr/bin/env bash
# Browser end-to-end tests: publishes a test gallery from assets/photos with static/model, serves the page with
# the `web` crate and drives it in headless Chromium (tests/e2e/*.test.mjs). Needs static/pkg (scripts/build-wasm.sh)
# and a model (static/model; without one, a random-weight model from web/examples/e2e_fixture_model.rs: the
# rankings are then meaningless but page-vs-native parity still holds). Screenshots go to tests/artifacts/.
# Exits non-zero on any failure.
#   IMGPICK_UPDATE_DOCS_SCREENSHOT=1 scripts/test-e2e.sh   # also refresh docs/screenshots/ (the default gallery)
#   IMGPICK_E2E_MODEL=random scripts/test-e2e.sh           # force the random-weight model
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
E2E="${IMGPICK_E2E_DIR:-$ROOT/target/e2e}"
die() { echo "test-e2e: $*" >&2; exit 1; }

[ -f static/pkg/wasm_model_bg.wasm ] && [ -f static/pkg/wasm_model.js ] || die "static/pkg is missing: run scripts/build-wasm.sh first"
[ -x /usr/bin/chromium ] || die "Chromium is missing: run scripts/setup.sh"
[ -d tests/node_modules/playwright-core ] || die "playwright-core is missing: run scripts/setup.sh"

echo "test-e2e: building web and trainer"
cargo build -q -p web
if [ -z "${IMGPICK_TRAINER_BIN:-}" ]; then
  cargo build -q -p trainer  # the debug build `cargo test` makes anyway; libtorch does the heavy work
  export IMGPICK_TRAINER_BIN="$ROOT/target/debug/trainer"
fi
MODEL="${IMGPICK_E2E_MODEL:-$ROOT/static/model}"
if [ "$MODEL" = random ] || [ ! -f "$MODEL/manifest.json" ]; then
  [ "$MODEL" = random ] || echo "test-e2e: WARNING: no model in $MODEL; testing with a random-weight model" >&2
  MODEL="$E2E/random-model"
  cargo run -q -p web --example e2e_fixture_model -- "$MODEL"
fi
MODEL="$(cd "$MODEL" && pwd)"
# The image encoder the page downloads when photos are added (generated, git-ignored; see the script).
TRAINER="$IMGPICK_TRAINER_BIN" scripts/build-image-encoder.sh "$MODEL"
export IMGPICK_WEB_BIN="${IMGPICK_WEB_BIN:-$ROOT/target/debug/web}" IMGPICK_E2E_DIR="$E2E"

# The page, served from a folder of links to static/ with a gallery of the test photos (re-runs reuse embeddings).
python3 scripts/gallery/demo_gallery.py --no-stamps --photos assets/photos --photo-captions scripts/gallery/demo-photos.json --staging "$E2E/photos"
mkdir -p "$E2E/static"
STATIC_FILES=(index.html style.css app.js protocol.js page worker sw.js pkg)  # everything in static/ but model/ and gallery/
for f in "${STATIC_FILES[@]}"; do ln -sfn "$ROOT/static/$f" "$E2E/static/$f"; done
ln -sfn "$MODEL" "$E2E/static/model"
"$IMGPICK_TRAINER_BIN" publish --model "$MODEL" --images "$E2E/photos/images" --captions "$E2E/photos/captions.json" \
  --out "$E2E/static/gallery"
# The same photos scored the way the page scores the user's own photos (one view, plain cosine): the reference
# for "My photos" (tests/e2e/mine.test.mjs).
"$IMGPICK_TRAINER_BIN" publish --plain --model "$MODEL" --images "$E2E/photos/images" --captions "$E2E/photos/captions.json" \
  --out "$E2E/plain-gallery"

# The same page with a damaged gallery.bin (one byte flipped mid-file): the page must show its error state.
rm -rf "$E2E/static-corrupt" && mkdir -p "$E2E/static-corrupt/gallery"
for f in "${STATIC_FILES[@]}" model; do ln -sfn "$E2E/static/$f" "$E2E/static-corrupt/$f"; done
cp "$E2E/static/gallery/gallery.json" "$E2E/static-corrupt/gallery/"
ln -sfn "$E2E/static/gallery/thumbs" "$E2E/static-corrupt/gallery/thumbs"
python3 - "$E2E/static/gallery/gallery.bin" "$E2E/static-corrupt/gallery/gallery.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) // 2] ^= 0xFF
open(sys.argv[2], "wb").write(data)
PY

# And without the wasm package (a deploy that forgot scripts/build-wasm.sh).
rm -rf "$E2E/static-nopkg" && mkdir -p "$E2E/static-nopkg"
for f in "${STATIC_FILES[@]}" model gallery; do [ "$f" = pkg ] || ln -sfn "$E2E/static/$f" "$E2E/static-nopkg/$f"; done

# The same photos as a partitioned gallery (4 lists, 2 probed per query), and two broken copies: lists damaged
# or missing, and a header made for another model (tests/e2e/partitioned.test.mjs).
cargo build -q -p wasm-model --example partition
for d in static-partitioned static-partitioned-broken static-partitioned-other-model; do
  rm -rf "${E2E:?}/$d" && mkdir -p "$E2E/$d"
  for f in "${STATIC_FILES[@]}" model; do ln -sfn "$E2E/static/$f" "$E2E/$d/$f"; done
  "$ROOT/target/debug/examples/partition" "$E2E/static/gallery" "$E2E/$d/gallery" --lists 4 --probe 2 >/dev/null
  cp -r "$E2E/static/gallery/thumbs" "$E2E/$d/gallery/thumbs"
done
python3 - "$E2E" <<'PY'
import json, pathlib, sys, zlib
e2e = pathlib.Path(sys.argv[1])
broken = e2e / "static-partitioned-broken/gallery"
parts = broken / json.loads((broken / "gallery.json").read_text())["gallery_id"]
for i, shard in enumerate(sorted(parts.glob("lists/*/*.bin"))):
    if i % 2:
        shard.unlink()                       # missing
    else:
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF         # damaged
        shard.write_bytes(data)
other = e2e / "static-partitioned-other-model/gallery"
descriptor = json.loads((other / "gallery.json").read_text())
header = other / descriptor["gallery_id"] / "index.bin"
data = bytearray(header.read_bytes())
data[32:64] = b"f" * 32                      # the header's model id, CRC refreshed: a valid header of another model
data[-4:] = zlib.crc32(bytes(data[:-4])).to_bytes(4, "little")
header.write_bytes(data)
descriptor["model_id"] = "f" * 32
(other / "gallery.json").write_text(json.dumps(descriptor))
PY

# The database tier (tests/e2e/server-mode.test.mjs): a PostgreSQL + pgvector instance of this run's own
# (scripts/pg.sh: free port, scratch folder; stopped and removed at the end, also on failure), the test gallery
# loaded into it with `trainer db-load`, and a static folder beside it (`web --db` answers its gallery.json).
# Without the engine installed, the test says why and is skipped.
db_tmp="$(mktemp -d -t imgpick-e2e-db-XXXXXX)"
chmod 755 "$db_tmp"  # as root the server runs as imgpick-pg, which must be able to enter it
stop_db() { scripts/pg.sh stop --dir "$db_tmp/pg" >/dev/null 2>&1 || true; rm -rf "$db_tmp"; }
trap stop_db EXIT
db_rc=0
DB_URL="$(IMGPICK_PG_FAST=1 scripts/pg.sh start --dir "$db_tmp/pg" 2>"$db_tmp/start.log")" || db_rc=$?
if [ "$db_rc" = 0 ]; then
  IMGPICK_DB_URL="$DB_URL" RUST_LOG=warn "$IMGPICK_TRAINER_BIN" db-load --model "$MODEL" --gallery "$E2E/static/gallery"
  rm -rf "$E2E/static-db" && mkdir -p "$E2E/static-db"
  # gallery/ is the published folder as it is: its thumbs/ are served, its gallery.json is answered by web --db
  for f in "${STATIC_FILES[@]}" model gallery; do ln -sfn "$E2E/static/$f" "$E2E/static-db/$f"; done
  export IMGPICK_E2E_DB_URL="$DB_URL" IMGPICK_E2E_DB_DIR="$db_tmp/pg"
elif [ "$db_rc" = 4 ]; then
  IMGPICK_E2E_DB_SKIPPED="$(tail -n 1 "$db_tmp/start.log")"
  export IMGPICK_E2E_DB_SKIPPED
else
  cat "$db_tmp/start.log" >&2
  die "could not start a PostgreSQL instance for the server-mode test (scripts/pg.sh exit $db_rc)"
fi

echo "test-e2e: running the browser tests"
mkdir -p tests/artifacts
# Chromium's scratch files (profiles of a killed browser included) go to a TMPDIR removed afterwards.
browser_tmp="$(mktemp -d -t imgpick-e2e-XXXXXX)"
trap 'rm -rf "$browser_tmp"; stop_db' EXIT
TMPDIR="$browser_tmp" timeout 600 node --test --test-concurrency=1 --test-reporter=spec tests/e2e/
echo "test-e2e: passed (screenshots in tests/artifacts/)"
