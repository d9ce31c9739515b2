# relayshim - build, install, test.
#
#   make                   build sendmail/sendmail and shim/librelayshim.so
#   make install PREFIX=/usr DESTDIR=/tmp/root
#   make check [SAN=1]     unit tests (Check) + integration tests (pytest);
#                          installs missing packages first, unless NODEPS=1
#   make integration       the integration tests (pytest) alone
#   make demo              local Postfix relay, one message via sendmail and via the shim
#   make bench             relayshim against its peers (see bench/README.md)
#   make fuzz              libFuzzer targets (clang)
#   make format-check      clang-format --dry-run over the C sources
#   make modgraph          module graph from nm, fails on a cycle
#   make deb               Debian package (debian/, dpkg-buildpackage) in build/deb/
#   make check-deb         install the package in a Debian container, mail through it

PREFIX   ?= /usr
DESTDIR  ?=
SYSCONFDIR ?= /etc
CC       ?= cc
PKG_CONFIG ?= pkg-config

CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
HARDEN   = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
OPT      ?= -O2 -g
LDHARDEN = -pie -Wl,-z,relro -Wl,-z,now

ifeq ($(SAN),1)
OPT      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
HARDEN   = -fPIE
LDHARDEN = -pie -fsanitize=address,undefined
BUILD    = build-san
else
BUILD    = build
endif

DEP_CFLAGS := $(shell $(PKG_CONFIG) --cflags openssl libsasl2 2>/dev/null) -I/usr/include/iniparser
# iniparser is linked statically when its archive exists: one shared library
# less to load at every sendmail start (OpenSSL and SASL are dlopen'ed on use).
INIPARSER_A := $(shell $(CC) -print-file-name=libiniparser.a)
ifeq ($(INIPARSER_A),libiniparser.a)
INIPARSER_LIB = -liniparser
else
INIPARSER_LIB = $(INIPARSER_A)
endif
DEP_LIBS   := $(shell $(PKG_CONFIG) --libs openssl libsasl2 2>/dev/null) $(INIPARSER_LIB)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

CFLAGS_ALL = $(CSTD) $(WARN) $(HARDEN) $(OPT) $(DEP_CFLAGS) $(CFLAGS)

LIB_SRC  = $(filter-out sendmail/main.c,$(wildcard sendmail/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ = $(BUILD)/sendmail/main.o
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:%.c=$(BUILD)/%)
TOOL_SRC = $(wildcard tests/tools/*.c)
TOOL_BIN = $(TOOL_SRC:%.c=$(BUILD)/%)

SENDMAIL = $(BUILD)/sendmail/sendmail
SHIM     = $(BUILD)/shim/librelayshim.so

.PHONY: all install check check-one unit integration demo bench fuzz clean deps format deb check-deb
all: $(SENDMAIL) $(SHIM)

$(BUILD)/%.o: %.c $(wildcard sendmail/*.h) $(wildcard shim/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isendmail -c -o $@ $<

$(BUILD)/libsendmail.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(SENDMAIL): $(MAIN_OBJ) $(BUILD)/libsendmail.a
	$(CC) $(LDHARDEN) $(LDFLAGS) -o $@ $^ $(DEP_LIBS)

# The shim links libc only: no OpenSSL, no SASL, nothing that could clash
# with what the application itself loads.
SHIM_CFLAGS = $(CSTD) $(WARN) $(OPT) -fPIC -fvisibility=hidden $(CFLAGS)
ifeq ($(SAN),1)
SHIM_CFLAGS += -fsanitize=address,undefined
endif
$(SHIM): $(wildcard shim/*.c) $(wildcard shim/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(SHIM_CFLAGS) -shared -Wl,-z,relro -Wl,-z,now -Wl,-soname,librelayshim.so \
		-o $@ $(filter %.c,$^) -ldl

$(BUILD)/tests/unit/%: tests/unit/%.c $(BUILD)/libsendmail.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CHECK_CFLAGS) -Isendmail -o $@ $< $(BUILD)/libsendmail.a $(DEP_LIBS) $(CHECK_LIBS)

# fake_bs includes sendmail/shim_accept.c: rebuild tools when it changes.
$(BUILD)/tests/tools/%: tests/tools/%.c sendmail/shim_accept.c sendmail/shim_accept.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT) $(CFLAGS) -o $@ $< -lpthread

# NODEPS=1: do not even look for missing packages (tools/install-deps.sh).
deps:
ifneq ($(NODEPS),1)
	@sh tools/install-deps.sh
endif

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/lib/relayshim $(DESTDIR)$(SYSCONFDIR) \
		$(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(SENDMAIL) $(DESTDIR)$(PREFIX)/sbin/sendmail
	ln -sf ../sbin/sendmail $(DESTDIR)$(PREFIX)/lib/sendmail
	ln -sf ../sbin/sendmail $(DESTDIR)$(PREFIX)/bin/mailq
	install -m 644 $(SHIM) $(DESTDIR)$(PREFIX)/lib/relayshim/librelayshim.so
	install -m 644 conf/relayshim.conf $(DESTDIR)$(SYSCONFDIR)/relayshim.conf
	install -m 644 man/relayshim.8 $(DESTDIR)$(PREFIX)/share/man/man8/relayshim.8
	install -m 644 man/relayshim.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/relayshim.conf.5

unit: $(UNIT_BIN)
	@sh tests/run-unit.sh $(UNIT_BIN)

integration: all $(TOOL_BIN)
	@BUILD=$(BUILD) sh tests/run-integration.sh

# make check: the suite with the normal build, then again built with ASan+UBSan
# (issue 7: CI runs both), then one overall line. SAN=1: the sanitizer pass
# only; QUICK=1: the normal pass only (for a quick look while developing).
check: deps
ifeq ($(SAN)$(QUICK),)
	@rm -f build/check-totals
	@$(MAKE) --no-print-directory check-one CHECK_TOTALS=$(CURDIR)/build/check-totals; \
	 rc1=$$?; \
	 $(MAKE) --no-print-directory check-one SAN=1 CHECK_TOTALS=$(CURDIR)/build/check-totals; \
	 rc2=$$?; \
	 awk '{p += $$1; f += $$2} END {printf "%d passed, %d failed\n", p, f}' build/check-totals; \
	 [ $$rc1 -eq 0 ] && [ $$rc2 -eq 0 ]
else
	@$(MAKE) --no-print-directory check-one
endif

check-one:
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(TOOL_BIN)
	@CHECK_TOTALS=$(CHECK_TOTALS) BUILD=$(BUILD) sh tests/run-all.sh $(UNIT_BIN)

# make check-containers: Dockerfile.example built and run under podman (tests/containers/);
# the local base images are built once (tools/install-container-deps.sh). .ci/run runs it.
.PHONY: check-containers
check-containers:
	@sh tools/install-container-deps.sh
	@/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/containers

demo: deps all
	@BUILD=$(BUILD) sh tools/demo.sh

bench: deps all
	@BUILD=$(BUILD) sh bench/run.sh

# libFuzzer targets: fuzz/fuzz_*.c, each linked with the library sources
# compiled by clang with the same sanitizers, one binary per target in
# build-fuzz/fuzz/. make fuzz RUN=600 also runs each target for that many
# seconds over its seed corpus (fuzz/corpus/<target>) with the dictionary;
# findings land in build-fuzz/findings/<target>/.
FUZZ_CC     ?= clang
FUZZ_FLAGS   = -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
FUZZ_CFLAGS  = $(CSTD) $(WARN) $(FUZZ_FLAGS) $(DEP_CFLAGS) -Isendmail
FUZZ_SRC     = $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN     = $(FUZZ_SRC:%.c=build-fuzz/%)
FUZZ_LIB_OBJ = $(LIB_SRC:%.c=build-fuzz/%.o)
build-fuzz/sendmail/%.o: sendmail/%.c $(wildcard sendmail/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
build-fuzz/fuzz/%: fuzz/%.c fuzz/fuzz.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(DEP_LIBS)
.PRECIOUS: build-fuzz/sendmail/%.o
fuzz: $(FUZZ_BIN)
ifneq ($(RUN),)
	@sh fuzz/run.sh $(RUN) $(FUZZ_BIN)
endif

# make deb: dpkg-buildpackage -b on a copy of the tree (its parent directory
# is where the .deb lands: build/deb/relayshim_VERSION_ARCH.deb), then
# lintian, which fails on errors (where it can run). DEB_BUILD_OPTIONS=nocheck
# skips the unit tests (and the check build dependency).
deb:
	@sh tools/install-deb-deps.sh
	rm -rf build/deb && mkdir -p build/deb/relayshim
	tar --exclude=./build --exclude=./build-san --exclude=./build-fuzz --exclude=./.git \
		-cf - . | tar -xf - -C build/deb/relayshim
	cd build/deb/relayshim && dpkg-buildpackage -us -uc -b \
		$(if $(filter nocheck,$(DEB_BUILD_OPTIONS)),-Pnocheck)
	rm -rf build/deb/relayshim
	@if lintian --version >/dev/null 2>&1; then \
		echo "lintian --fail-on error build/deb/relayshim_*.changes"; \
		lintian --fail-on error build/deb/relayshim_*.changes; \
	else \
		echo "make deb: lintian does not run here (a slim image's dpkg excludes /usr/share/lintian): not checked" >&2; \
	fi
	@ls build/deb/relayshim_*.deb

# make check-deb: the package installed with bsd-mailx and cron in a Debian
# bookworm container (podman), no other MTA pulled in, mail(1) to a relay.
check-deb: deb
	@sh tools/install-deb-deps.sh --test
	@sh tests/deb/test_deb.sh build/deb

# make format rewrites the files; make format-check only says which differ
# (make check runs it as one counted check: tests/integration/test_tools.py).
FORMAT_FILES = sendmail/*.[ch] shim/*.[ch] tests/unit/*.c tests/tools/*.c
.PHONY: format-check modgraph
format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run -Werror $(FORMAT_FILES)

# make modgraph: the link-level module graph of sendmail (nm over the
# objects), non-zero on a cycle; make check runs it too (test_tools.py).
modgraph: $(LIB_OBJ) $(MAIN_OBJ)
	@sh tools/modgraph.sh $(LIB_OBJ) $(MAIN_OBJ)

clean:
	rm -rf build build-san build-fuzz
