# Portico: two commands on a fresh machine.
#   make demo   install what is needed, build, run the demo
#   make test   install what is needed, run the whole test suite
#
# Everything shares one target dir (target/), built once in the dev profile (dependencies
# optimised, see Cargo.toml), so `make test` after `make demo` rebuilds nothing.

SHELL := /bin/bash
CARGO ?= cargo
# Debian packages: build deps of the media stack (xcap pulls wayland/pipewire bindings even
# on X11; without nasm openh264 silently builds without assembly), then the X server and
# tools the tests drive.
BUILD_DEPS := pkg-config libx11-dev libx11-xcb-dev libxcb1-dev libegl-dev libwayland-dev libgbm-dev libpipewire-0.3-dev libclang-dev nasm
TEST_DEPS := xvfb xdotool xclip x11-utils x11-xserver-utils xterm chromium iproute2 nftables dbus dunst
DEMO_DATA ?= $(CURDIR)/target/demo

.PHONY: demo test deps build lint bench compare many-viewers clean console-deps fuzz fuzz-short fuzz-tool adversarial sim

deps:
	@missing=""; for p in $(BUILD_DEPS) $(TEST_DEPS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	$(CARGO) build --workspace --all-targets --locked

demo: build
	DEMO_DATA=$(DEMO_DATA) scripts/demo.sh

# Benchmarks print figures (docs/performance.md); release build, not part of `make test`.
bench: deps
	$(CARGO) build --release --locked -p portico-simulations -p portico-signal
	target/release/media_bench
	target/release/signal_load --hosts 1000 --lookups 500 --duration 10

# Portico beside x11vnc, TigerVNC and ffmpeg x11grab+libx264 on the same Xvfb workloads
# (docs/performance.md); a long campaign (~20 min), not part of `make test`.
COMPARE_DEPS := x11vnc tigervnc-scraping-server tigervnc-viewer xterm xdotool ffmpeg bc python3
compare: deps
	@missing=""; for p in $(COMPARE_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; fi
	$(CARGO) build --release --locked -p portico -p portico-simulations
	simulations/scripts/compare.py --bin target/release --size 1280x720 --secs 10 --out target/compare
	simulations/scripts/compare.py --bin target/release --size 1920x1080 --secs 10 --out target/compare
	simulations/scripts/host_cpu.sh target/release 1920x1080 10

# Cost per viewer for 1, 4 and 16 viewers on a scrolling terminal and on video
# (docs/performance.md, "Many viewers"); release build, not part of `make test`.
many-viewers: deps
	@missing=""; for p in ffmpeg bc python3; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; fi
	$(CARGO) build --release --locked -p portico
	simulations/scripts/many_viewers.sh target/release 1280x720 10

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# playwright-core drives Debian's Chromium (no browser download).
console-deps: deps
	@command -v npm >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; }
	cd tests/console && npm ci --no-audit --no-fund

# The NAT matrix over network namespaces (docs/connectivity.md); needs root. Also part of
# `make test` (tests/nat_matrix.rs), which fails without root unless PORTICO_SKIP_NETNS=1.
sim: build
	simulations/netns/nat_matrix.sh

# The attacks of docs/security.md that start real processes (also part of `make test`).
adversarial: deps console-deps
	$(CARGO) test --locked -p portico-signal-client --test only_peer
	$(CARGO) test --locked -p portico --test flood --test guest_flood --test hostile_messages \
	  --test enrollment --test narrowing --test reconnect --test files --test provision_acl \
	  --test browse --test access --test stale_ticket --test resume
	$(CARGO) test --locked -p portico-signal --test crash --test enrollment --test relay --test server

# Every fuzz target of core/fuzz (docs/fuzzing.md): a short fixed budget in `make test`,
# the long campaign (FUZZ_RUNS executions per target, ~2 h on 2 cores) in `make fuzz`.
FUZZ_SECS ?= 10
FUZZ_RUNS ?= 10000000
fuzz-tool:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked --version 0.13.2

fuzz-short: fuzz-tool
	scripts/fuzz.sh time $(FUZZ_SECS)

fuzz: fuzz-tool
	scripts/fuzz.sh runs $(FUZZ_RUNS)

test: deps lint console-deps
	$(CARGO) test --workspace --all-targets --locked
	$(CARGO) test --workspace --doc --locked
	$(MAKE) fuzz-short

clean:
	$(CARGO) clean
