################################################################################
#
# firmware-agent
#
################################################################################

# The external tree lives inside the firmware-agent repository, so by default
# the package is built from that checkout (local site method: "make
# firmware-agent-rebuild" picks up edits). For a pinned release build use
# the git method instead, e.g. in a local.mk or by editing these lines:
#   FIRMWARE_AGENT_VERSION = v0.1.0
#   FIRMWARE_AGENT_SITE = https://git.example.com/fleet/firmware-agent.git
#   FIRMWARE_AGENT_SITE_METHOD = git
# (a git/tarball download is vendored by Buildroot's cargo download
# post-process, so the build itself runs --offline.)
FIRMWARE_AGENT_VERSION = 0.1.0
FIRMWARE_AGENT_SITE = $(realpath $(BR2_EXTERNAL_FIRMWARE_AGENT_PATH)/..)
FIRMWARE_AGENT_SITE_METHOD = local
FIRMWARE_AGENT_LICENSE = MIT or Apache-2.0
FIRMWARE_AGENT_LICENSE_FILES = LICENSE-MIT LICENSE-APACHE

# Cargo workspace: the binary crate is in firmware-agent/; Cargo.lock is at the
# workspace root and is used (--locked) by the cargo-package infrastructure.
FIRMWARE_AGENT_SUBDIR = firmware-agent

# The eBPF object (crate firmware-agent-ebpf in ebpf/probes) is built by
# firmware-agent/build.rs for bpfel-unknown-none with a nightly toolchain
# (-Z build-std=core needs its rust-src component) and linked by bpf-linker.
# Buildroot's host-rustc is a stable toolchain without either, so the host's
# rustup toolchain and bpf-linker are used for that step only: rustup's
# directories and ~/.cargo/bin are made visible to build.rs, while the
# aarch64 user-space code is compiled by Buildroot's host-rustc with
# Buildroot's cross toolchain as the linker.
FIRMWARE_AGENT_HOST_RUSTUP_HOME = $(or $(RUSTUP_HOME),$(HOME)/.rustup)
FIRMWARE_AGENT_HOST_CARGO_BIN = $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
# Empty: build.rs uses the nightly pinned in ebpf/nightly-toolchain.
FIRMWARE_AGENT_EBPF_TOOLCHAIN = $(call qstrip,$(BR2_PACKAGE_FIRMWARE_AGENT_EBPF_TOOLCHAIN))
FIRMWARE_AGENT_EBPF_TOOLCHAIN_NAME = \
	$(or $(FIRMWARE_AGENT_EBPF_TOOLCHAIN),$$(cat $(FIRMWARE_AGENT_SITE)/ebpf/nightly-toolchain))

# The repository's .cargo/config.toml sets CC/AR for aarch64 musl to clang and
# llvm-ar (for builds without a cross gcc); inside Buildroot use Buildroot's
# cross toolchain instead (environment beats a config [env] table).
FIRMWARE_AGENT_CC_VARS_TARGET = $(subst -,_,$(RUSTC_TARGET_NAME))

FIRMWARE_AGENT_CARGO_ENV = \
	CC_$(FIRMWARE_AGENT_CC_VARS_TARGET)="$(TARGET_CC)" \
	AR_$(FIRMWARE_AGENT_CC_VARS_TARGET)="$(TARGET_AR)" \
	CFLAGS_$(FIRMWARE_AGENT_CC_VARS_TARGET)="$(TARGET_CFLAGS)" \
	$(if $(FIRMWARE_AGENT_EBPF_TOOLCHAIN),EBPF_TOOLCHAIN=$(FIRMWARE_AGENT_EBPF_TOOLCHAIN)) \
	RUSTUP_HOME=$(FIRMWARE_AGENT_HOST_RUSTUP_HOME) \
	PATH=$(BR_PATH):$(FIRMWARE_AGENT_HOST_CARGO_BIN)

FIRMWARE_AGENT_CARGO_BUILD_OPTS = --bin firmware-agent

# Fail early, with a clear message, when the build host lacks the eBPF tools.
define FIRMWARE_AGENT_CHECK_EBPF_TOOLS
	@PATH=$(BR_PATH):$(FIRMWARE_AGENT_HOST_CARGO_BIN) \
	RUSTUP_HOME=$(FIRMWARE_AGENT_HOST_RUSTUP_HOME) sh -c '\
	command -v bpf-linker >/dev/null || { echo "firmware-agent: bpf-linker not found on the build host (cargo install bpf-linker)"; exit 1; }; \
	command -v rustup >/dev/null || { echo "firmware-agent: rustup not found on the build host"; exit 1; }; \
	tc=$(FIRMWARE_AGENT_EBPF_TOOLCHAIN_NAME); \
	rustup run $$tc rustc --version >/dev/null || { echo "firmware-agent: rustup toolchain $$tc missing (rustup toolchain install $$tc --component rust-src)"; exit 1; }; \
	rustup component list --installed --toolchain $$tc | grep -q "^rust-src" || { echo "firmware-agent: rust-src missing for $$tc"; exit 1; }'
endef
FIRMWARE_AGENT_PRE_BUILD_HOOKS += FIRMWARE_AGENT_CHECK_EBPF_TOOLS

# The local site method is not vendored by Buildroot's download step: fetch
# the locked dependencies into Buildroot's cargo home so the --offline build
# finds them (needs crates.io access once).
ifeq ($(FIRMWARE_AGENT_SITE_METHOD),local)
define FIRMWARE_AGENT_CARGO_FETCH
	cd $(@D) && $(TARGET_MAKE_ENV) $(PKG_CARGO_ENV) cargo fetch --locked
endef
FIRMWARE_AGENT_PRE_BUILD_HOOKS += FIRMWARE_AGENT_CARGO_FETCH
endif

$(eval $(cargo-package))
