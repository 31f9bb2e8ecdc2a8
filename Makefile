# Entry points. `make demo` and `make test` do all set-up themselves (packages, configure, build).
BUILD ?= build
JOBS ?= $(shell nproc)
PULSEKD = $(BUILD)/pulsekd
# ccache (when installed) keys on paths relative to the checkout: clones anywhere share the cache.
export CCACHE_BASEDIR ?= $(CURDIR)

.PHONY: all deps configure build demo test test-sanitize fuzz clean

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

# Every CTest suite again in an AddressSanitizer + UndefinedBehaviorSanitizer build (build-san):
# any invalid access, leak or undefined behaviour fails the suite that ran into it.
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
test-sanitize: deps
	@cmake -S . -B build-san -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$(SAN_FLAGS)" \
	  -DCMAKE_C_FLAGS="$(SAN_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
	@cmake --build build-san -j $(JOBS)
	cd build-san && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} bash scripts/run-fuzzers

clean:
	rm -rf $(BUILD) build-fuzz build-san
