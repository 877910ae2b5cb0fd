# magpie - build, test and benchmark.
#   make                  library, tests, benchmarks, examples, tools
#   make test             run the test suite (SANITIZE=address|undefined|thread|address,undefined)
#   make bench            run the benchmark suite (QUICK=1 for a short run)
#   make install PREFIX=/usr/local DESTDIR=
# WERROR=1 adds -Werror (CI sets it).

PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
SANITIZE ?=
WERROR   ?=
QUICK    ?=

ifeq ($(SANITIZE),)
BUILD    ?= build
OPT      := -O2
else
BUILD    ?= build/san-$(subst $(comma),-,$(SANITIZE))
OPT      := -O1 -fno-omit-frame-pointer -fsanitize=$(SANITIZE)
endif
comma := ,

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifneq ($(WERROR),)
WARN     += -Werror
endif
CPPFLAGS += -D_GNU_SOURCE -Iinclude -I.
CFLAGS   += -std=c11 -g $(OPT) $(WARN) -fPIC -fvisibility=hidden -pthread
LDFLAGS  += $(if $(SANITIZE),-fsanitize=$(SANITIZE))
LIBS     := -luring -lck -lpthread

LIB_DIRS := runtime io sync procpool observe lifecycle
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_ASM  := $(wildcard runtime/*.S)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(LIB_ASM:%.S=$(BUILD)/obj/%.o)
HEADERS  := $(wildcard include/*.h include/magpie/*.h $(foreach d,$(LIB_DIRS),$(d)/*.h))

TESTS    := $(patsubst test/%.c,$(BUILD)/test/%,$(wildcard test/*.c))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
FLOOR    := $(patsubst bench/floor/%.c,$(BUILD)/bench/floor/%,$(wildcard bench/floor/*.c))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TOOLS    := $(patsubst tools/%.c,$(BUILD)/tools/%,$(wildcard tools/*.c))
DEPS_OK  := build/.deps-ok

.PHONY: all test bench bench-peers bench-compare install clean deps format format-check fuzz fuzz-run
all: $(BUILD)/libmagpie.a $(BUILD)/libmagpie.so $(BUILD)/magpie.pc $(TESTS) $(BENCHES) $(FLOOR) $(EXAMPLES) $(TOOLS)

$(DEPS_OK): tools/deps.sh
	@sh tools/deps.sh build
	@mkdir -p $(@D) && touch $@
deps: $(DEPS_OK)

$(BUILD)/obj/%.o: %.c $(HEADERS) $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/obj/%.o: %.S $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(if $(SANITIZE),-fsanitize=$(SANITIZE)) -c $< -o $@

$(BUILD)/libmagpie.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/libmagpie.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LIBS)
$(BUILD)/magpie.pc: tools/magpie.pc.in
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' $< > $@

# Programs link the static library so that they run from the build tree.
LINK = $(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(BUILD)/libmagpie.a $(LDFLAGS) $(LIBS) -lm
$(BUILD)/test/%: test/%.c test/test.h $(BUILD)/libmagpie.a
	@mkdir -p $(@D)
	$(LINK)
$(BUILD)/bench/%: bench/%.c $(BUILD)/libmagpie.a $(wildcard bench/*.h)
	@mkdir -p $(@D)
	$(LINK)
$(BUILD)/examples/%: examples/%.c $(BUILD)/libmagpie.a
	@mkdir -p $(@D)
	$(LINK)
$(BUILD)/tools/%: tools/%.c $(BUILD)/libmagpie.a
	@mkdir -p $(@D)
	$(LINK)
# The floor is a hand-written io_uring program: no runtime linked in.
$(BUILD)/bench/floor/%: bench/floor/%.c $(wildcard bench/floor/*.h) $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) -luring

test: all
	@sh tools/run-tests.sh $(BUILD)/test $(if $(SANITIZE),3,1)

bench: all
	@sh tools/deps.sh bench
	@sh bench/run.sh $(BUILD) $(if $(QUICK),quick,full)

# Builds the Tokio and Go peers (when the toolchains are there) and runs their
# micro-benchmarks beside magpie's, in the same line format.
bench-peers: all
	@sh bench/peers/build.sh
	@for p in build/peers/tokio_bench build/peers/go_bench; do \
	    [ -x $$p ] && { echo "== $$p"; $$p --quick; } || true; done
	@echo "== magpie"; $(BUILD)/bench/micro --quick; $(BUILD)/bench/sync_bench --quick

bench-compare:
	@sh bench/compare.sh $(OLD) $(NEW)

install: $(BUILD)/libmagpie.a $(BUILD)/libmagpie.so $(BUILD)/magpie.pc
	install -d $(DESTDIR)$(PREFIX)/include/magpie $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/magpie.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/magpie/*.h $(DESTDIR)$(PREFIX)/include/magpie/
	install -m 644 $(BUILD)/libmagpie.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libmagpie.so $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' tools/magpie.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/magpie.pc

# libFuzzer targets (clang): the HTTP parser.
fuzz:
	$(MAKE) -C test/fuzz
fuzz-run:
	$(MAKE) -C test/fuzz run

format:
	clang-format -i $(LIB_SRC) $(HEADERS) test/*.c bench/*.c examples/*.c tools/*.c
format-check:
	clang-format --dry-run --Werror $(LIB_SRC) $(HEADERS)

clean:
	rm -rf build

# Cross-compiles the library for aarch64 with -Werror and runs the context
# switch test under qemu-user (tools/cross-aarch64.sh; deps.sh cross installs
# the toolchain when run as root).
.PHONY: cross-aarch64
cross-aarch64:
	@MAKE="$(MAKE)" sh tools/cross-aarch64.sh
