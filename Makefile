# Thin convenience wrapper around CMake/CTest. Everything real lives in
# CMakeLists.txt; every target works from a fresh clone (no build dir assumed).

SHELL := /bin/bash
.DEFAULT_GOAL := help

NPROC      := $(shell nproc 2>/dev/null || echo 2)
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(NPROC)

BUILD_DIR  ?= build
TSAN_DIR   ?= build-tsan
ASAN_DIR   ?= build-asan
CLANG_DIR  ?= build-clang
FUZZ_DIR   ?= build-fuzz
# Inputs per fuzz target in `make fuzz` (CI): the seeds' first pass, then
# mutations. See README.md ("Fuzzing") for longer runs.
FUZZ_RUNS  ?= 10000
BUILD_TYPE ?= RelWithDebInfo
# RelWithDebInfo, pinned to -O2 (CMake's default for GCC/Clang, made explicit).
RELWITHDEBINFO_FLAGS := -O2 -g -DNDEBUG
CMAKE_ARGS ?=

# At most two tests at once: every runtime test spins up one worker thread per
# core (and the stress tests keep them all busy), so higher -j only
# oversubscribes the CPU, makes timing-sensitive tests flaky and sanitizer runs
# slower. Two still overlaps the per-test process start-up of the many short
# gtest cases. Override with `make test CTEST_JOBS=1`.
CTEST_JOBS ?= 2
CTEST      := ctest --output-on-failure -j$(CTEST_JOBS)

# GCC 12's TSan cannot map its shadow memory on kernels with high mmap ASLR
# entropy (vm.mmap_rnd_bits > 28: "unexpected memory mapping"); running the
# tests with ASLR disabled avoids that. Empty where setarch cannot do it.
NO_ASLR := $(shell setarch $$(uname -m) -R true >/dev/null 2>&1 && echo "setarch $$(uname -m) -R")

CONFIGURE = cmake -S . -B $(1) -G Ninja \
	-DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$(RELWITHDEBINFO_FLAGS)" \
	$(2) $(CMAKE_ARGS)

FORMAT_DIRS := $(wildcard runtime server client tests bench)

.PHONY: deps build test run install image bench tsan asan thread-safety fuzz format clean help

deps: ## Install missing Debian packages (deploy/debian-packages.txt)
	@bash tools/install-deps.sh

build: deps ## Configure build/ (Ninja, RelWithDebInfo -O2) and build everything
	$(call CONFIGURE,$(BUILD_DIR),)
	cmake --build $(BUILD_DIR) -j$(NPROC)

test: build ## Build, then run all tests with ctest
	$(CTEST) --test-dir $(BUILD_DIR)

run: build ## Build, then run the daemon in the foreground (127.0.0.1:50051; Ctrl-C stops it)
	mkdir -p var
	./$(BUILD_DIR)/server/awaitd $(RUN_ARGS)

PREFIX ?= /usr/local
install: build ## Build, then install awaitd, awaitctl and the client library under PREFIX (/usr/local)
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# The container image (deploy/container/): the debootstrap bases are built
# once (deploy/make-base-images.sh), then `podman build`. IMAGE names the tag.
IMAGE ?= localhost/awaitd:latest
PODMAN := CONTAINERS_CONF=$(CURDIR)/deploy/container/containers.conf podman --runtime runc
image: deps ## Build the container image (IMAGE=localhost/awaitd:latest) with podman
	@bases="$$(CONTAINERS_CONF=$(CURDIR)/deploy/container/containers.conf deploy/make-base-images.sh)" && \
	$(PODMAN) build --format docker --network none \
	  --build-arg BUILD_BASE="$$(sed -n 1p <<<"$$bases")" \
	  --build-arg RUNTIME_BASE="$$(sed -n 2p <<<"$$bases")" \
	  -f deploy/container/Containerfile -t $(IMAGE) . && \
	echo "built $(IMAGE); run it with:" && \
	echo "  CONTAINERS_CONF=deploy/container/containers.conf podman --runtime runc run --rm -p 127.0.0.1:50051:50051 $(IMAGE)"

bench: build ## Build, then run the runtime benchmarks (BENCH_ARGS=...)
	@test -x ./$(BUILD_DIR)/bench/runtime_bench || \
	  { echo "runtime_bench was not built (bench/runtime_bench.cc missing or AWAITD_BUILD_BENCH=OFF)"; exit 1; }
	./$(BUILD_DIR)/bench/runtime_bench $(BENCH_ARGS)

tsan: deps ## Runtime-only ThreadSanitizer build + tests in build-tsan/
	$(call CONFIGURE,$(TSAN_DIR),-DAWAITD_RUNTIME_ONLY=ON -DAWAITD_SANITIZE=thread -DAWAITD_BUILD_BENCH=OFF)
	cmake --build $(TSAN_DIR) -j$(NPROC)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tools/tsan.supp" \
	AWAITD_STRESS_SCALE=0.05 \
	$(NO_ASLR) $(CTEST) --test-dir $(TSAN_DIR)

# ASan works with the uninstrumented system gRPC/protobuf (unlike TSan), so
# this one covers the daemon and its tests too.
asan: deps ## ASan+UBSan build + all tests (runtime and server) in build-asan/
	$(call CONFIGURE,$(ASAN_DIR),-DAWAITD_RUNTIME_ONLY=OFF -DAWAITD_SANITIZE=address -DAWAITD_BUILD_BENCH=OFF)
	cmake --build $(ASAN_DIR) -j$(NPROC)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	AWAITD_STRESS_SCALE=0.1 \
	$(CTEST) --test-dir $(ASAN_DIR)

thread-safety: deps ## Clang build of runtime and daemon with -Wthread-safety -Werror (build-clang/)
	CXX=clang++ $(call CONFIGURE,$(CLANG_DIR),-DAWAITD_RUNTIME_ONLY=OFF -DAWAITD_BUILD_BENCH=OFF -DAWAITD_BUILD_TESTS=OFF)
	cmake --build $(CLANG_DIR) -j$(NPROC)

# libFuzzer needs clang; the whole daemon is built with its coverage
# instrumentation and ASan+UBSan (tests/fuzz/CMakeLists.txt), nothing else.
fuzz: deps ## Clang libFuzzer build (ASan+UBSan) of tests/fuzz in build-fuzz/; runs each target FUZZ_RUNS inputs
	CXX=clang++ $(call CONFIGURE,$(FUZZ_DIR),-DAWAITD_RUNTIME_ONLY=OFF -DAWAITD_SANITIZE=address -DAWAITD_BUILD_BENCH=OFF -DAWAITD_BUILD_TESTS=OFF -DAWAITD_BUILD_FUZZERS=ON)
	cmake --build $(FUZZ_DIR) --target fuzzers -j$(NPROC)
	tests/fuzz/run_fuzzers.sh $(FUZZ_DIR) $(FUZZ_RUNS)

format: ## clang-format -i all *.h/*.cc under runtime server client tests bench
	@files="$$(find $(FORMAT_DIRS) -type f \( -name '*.h' -o -name '*.cc' \) 2>/dev/null)"; \
	if [ -n "$$files" ]; then echo "$$files" | xargs clang-format -i; \
	else echo "format: no sources found"; fi

clean: ## Remove all build directories
	rm -rf $(BUILD_DIR) $(TSAN_DIR) $(ASAN_DIR) $(CLANG_DIR) $(FUZZ_DIR)

help: ## Show this help
	@echo "awaitd make targets:"
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'
