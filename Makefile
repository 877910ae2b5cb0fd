# magpie - build, test and benchmark.
#   make                  library, tests, benchmarks, examples, tools
#   make test             build the library and the tests (and what they run), run the
#                         tests (SANITIZE=address|undefined|thread|address,undefined)
#   make check-layers     the folder layering and file sizes (make test runs it)
#   make bench            run the benchmark suite (QUICK=1 for a short run); the report
#                         goes to build/bench-results/ and no tracked file changes
#   make bench PUBLISH=1  also publish the run: copy the report to bench/results/ and
#                         replace README.md's benchmark section (then commit them)
#   make bench-compare    the last run against the published one (OLD=a.csv NEW=b.csv)
#   make install PREFIX=/usr/local DESTDIR=
# WERROR=1 adds -Werror (CI sets it).

PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
SANITIZE ?=
WERROR   ?=
QUICK    ?=
PUBLISH  ?=

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
# Stack probes: a frame larger than a page touches each page on its way down,
# so it hits a fiber stack's guard page instead of jumping it (runtime/fiber.c).
# GCC for aarch64 assumes a 64 KiB guard unless told of the 4 KiB one.
STACK_PROBES := -fstack-clash-protection
ifneq ($(findstring aarch64,$(shell $(CC) -dumpmachine 2>/dev/null)),)
STACK_PROBES += --param stack-clash-protection-guard-size=12
endif
CFLAGS   += -std=c11 -g $(OPT) $(WARN) -fPIC -fvisibility=hidden -pthread $(STACK_PROBES)
LDFLAGS  += $(if $(SANITIZE),-fsanitize=$(SANITIZE))
LIBS     := -luring -lck -lpthread

LIB_DIRS := runtime io sync procpool observe lifecycle
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_ASM  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.S))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(LIB_ASM:%.S=$(BUILD)/obj/%.o)
HEADERS  := $(wildcard include/*.h include/magpie/*.h $(foreach d,$(LIB_DIRS),$(d)/*.h))
LIB      := $(BUILD)/libmagpie.a $(BUILD)/libmagpie.so

# Programs: one source file each, DIR/NAME.c -> $(BUILD)/DIR/NAME, compiled to
# $(BUILD)/obj/DIR/NAME.o first (a program with flags of its own:
# $(BUILD)/obj/DIR/NAME.o: CFLAGS += ...).
TESTS    := $(patsubst %.c,$(BUILD)/%,$(wildcard test/*.c))
BENCHES  := $(patsubst %.c,$(BUILD)/%,$(wildcard bench/*.c))
FLOOR    := $(patsubst %.c,$(BUILD)/%,$(wildcard bench/floor/*.c))
EXAMPLES := $(patsubst %.c,$(BUILD)/%,$(wildcard examples/*.c))
TOOLS    := $(patsubst %.c,$(BUILD)/%,$(wildcard tools/*.c))
PROGRAMS := $(TESTS) $(BENCHES) $(EXAMPLES) $(TOOLS)   # linked with libmagpie.a
PROG_OBJ := $(patsubst $(BUILD)/%,$(BUILD)/obj/%.o,$(PROGRAMS) $(FLOOR))
# Programs the tests run besides themselves: test/http_server.c starts
# examples/http_server, test/crawl.c runs examples/crawl, test/obs_magtop.c
# drives tools/magtop.
TEST_USES  := $(BUILD)/examples/http_server $(BUILD)/examples/crawl $(BUILD)/tools/magtop
# test/kv_server.c starts examples/kv_server.
TEST_USES  += $(BUILD)/examples/kv_server
# What bench/run.sh runs (bench/net.sh: tools/loadgen).
BENCH_USES := $(BENCHES) $(FLOOR) $(BUILD)/examples/echo_server \
              $(BUILD)/examples/http_server $(BUILD)/tools/loadgen
# bench/kv.sh: examples/kv_server.
BENCH_USES += $(BUILD)/examples/kv_server
DEPS_OK  := build/.deps-ok

.PHONY: all lib test check-layers bench bench-peers bench-compare install clean deps format format-check fuzz fuzz-run
.DELETE_ON_ERROR:
all: $(LIB) $(BUILD)/magpie.pc $(PROGRAMS) $(FLOOR)
lib: $(LIB)

$(DEPS_OK): tools/deps.sh
	@sh tools/deps.sh build
	@mkdir -p $(@D) && touch $@
deps: $(DEPS_OK)

# The compiler writes each object's header dependencies beside it (NAME.d,
# -MMD), with a phony target per header (-MP) so that a removed header does
# not stop the build; the .d files are included at the end. An object whose
# .d is missing (built before tracking, or the .d deleted) is rebuilt: it
# depends on its .d, which has an empty rule.
DEPFLAGS := -MMD -MP
$(BUILD)/obj/%.o: %.c $(BUILD)/obj/%.d | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
$(BUILD)/obj/%.o: %.S $(BUILD)/obj/%.d | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(if $(SANITIZE),-fsanitize=$(SANITIZE)) $(DEPFLAGS) -c $< -o $@

$(BUILD)/libmagpie.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/libmagpie.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LIBS)
$(BUILD)/magpie.pc: tools/magpie.pc.in
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@STACK_PROBES@|$(STACK_PROBES)|' $< > $@

# Programs link the static library so that they run from the build tree.
$(PROGRAMS): $(BUILD)/%: $(BUILD)/obj/%.o $(BUILD)/libmagpie.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libmagpie.a $(LDFLAGS) $(LIBS) -lm
# The floor is a hand-written io_uring program: no runtime linked in.
$(FLOOR): $(BUILD)/%: $(BUILD)/obj/%.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) -luring

test: $(LIB) $(TESTS) $(TEST_USES) check-layers
	@sh tools/run-tests.sh $(BUILD)/test $(if $(SANITIZE),3,1)

# The folder layering of README.md's design notes, and the file-size limit.
check-layers:
	@python3 tools/layers.py .

bench: $(BENCH_USES)
	@sh tools/deps.sh bench
	@PUBLISH='$(PUBLISH)' sh bench/run.sh $(BUILD) $(if $(QUICK),quick,full)

# Builds the Tokio and Go peers (when the toolchains are there) and runs their
# micro-benchmarks beside magpie's, in the same line format.
bench-peers: $(BENCHES)
	@sh bench/peers/build.sh
	@for p in build/peers/tokio_bench build/peers/go_bench; do \
	    [ -x $$p ] && { echo "== $$p"; $$p --quick; } || true; done
	@echo "== magpie"; $(BUILD)/bench/micro --quick; $(BUILD)/bench/sync_bench --quick

# The last run (bench/run.sh writes build/bench-results/) against the published
# one (bench/results/), or any two runs' latest.csv: OLD=a.csv NEW=b.csv.
OLD ?= bench/results/latest.csv
NEW ?= build/bench-results/latest.csv
bench-compare:
	@sh bench/compare.sh $(OLD) $(NEW)

install: $(BUILD)/libmagpie.a $(BUILD)/libmagpie.so $(BUILD)/magpie.pc
	install -d $(DESTDIR)$(PREFIX)/include/magpie $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/magpie.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/magpie/*.h $(DESTDIR)$(PREFIX)/include/magpie/
	install -m 644 $(BUILD)/libmagpie.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libmagpie.so $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@STACK_PROBES@|$(STACK_PROBES)|' tools/magpie.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/magpie.pc

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

$(BUILD)/obj/%.d: ;
.PRECIOUS: $(BUILD)/obj/%.d
-include $(LIB_OBJ:.o=.d) $(PROG_OBJ:.o=.d)
