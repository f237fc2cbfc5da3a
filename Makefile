# imgpick — the two commands people run:
#   make demo   installs what is missing, builds the wasm package, makes sure a model and gallery exist, serves the page
#   make test   installs what is missing, then runs every test (native Rust, wasm in Node + Chromium, browser end-to-end)
SHELL := /bin/bash
PORT ?= 8080
HOST ?= 127.0.0.1
# GALLERY=path/to/images publishes that folder instead of the default demo gallery.
GALLERY ?=

.PHONY: setup test test-fast demo wasm gallery serve bench help

help:
	@echo "make demo [GALLERY=dir] [PORT=8080]  - build and serve the page on http://$(HOST):$(PORT)/"
	@echo "make test                           - install what is missing, run every test"
	@echo "make test-fast                      - the unit tests of every crate and the fast integration tests (minutes)"
	@echo "make bench                          - run the benchmarks and print their tables"

setup:
	@scripts/setup.sh

test: setup
	@scripts/test.sh

test-fast: setup
	@scripts/test-fast.sh

wasm: setup
	@scripts/build-wasm.sh

gallery: setup
	@GALLERY="$(GALLERY)" scripts/gallery/ensure-gallery.sh

demo:
	@scripts/setup.sh demo
	@scripts/build-wasm.sh
	@GALLERY="$(GALLERY)" scripts/gallery/ensure-gallery.sh
	@scripts/build-image-encoder.sh  # "My photos": the image encoder the page downloads lazily (generated, git-ignored)
	@cargo build -q -p web  # dev profile: dependencies are optimised (Cargo.toml), and it shares the test build
	@target/debug/web --host $(HOST) --port $(PORT) --static-dir static

bench: setup
	@scripts/bench.sh
