# Entry points. `make demo` and `make test` do all set-up themselves (packages, configure, build).
BUILD ?= build
JOBS ?= $(shell nproc)
PULSEKD = $(BUILD)/pulsekd

.PHONY: all deps configure build demo test fuzz clean

all: build

deps:
	@bash scripts/install-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The main pipeline on the built-in synthetic data.
demo: build
	$(PULSEKD) pipeline --data synth --out out/demo

# Every test: unit, gradient, parity, dataset, kernel and firmware tests, then bounded fuzzing.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@grep -a "^SKIPPED (" $(BUILD)/Testing/Temporary/LastTest.log || true
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-15} bash scripts/run-fuzzers

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash scripts/run-fuzzers

clean:
	rm -rf $(BUILD) build-fuzz
