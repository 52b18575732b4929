# sluice - one Makefile. `make run` builds and serves on the embedded store;
# `make test` builds and runs every test. Both install missing Debian packages.
#
#   make                      release build in build/rel/
#   make SANITIZER=address,undefined   sanitizer build in build/san/
#   make test                 the format check, unit tests (release + sanitizers), store contract suite,
#                             black-box API suite against the sanitizer build; the
#                             contract and API suites again on PostgreSQL (test-pg)
#   make bench                benchmarks (bench/run)
#   make bench-peers          sluice beside graphile-worker in one window, with ratios (bench/peers.py)
#   make fuzz                 libFuzzer targets for a while each (clang)
#   make format               clang-format (.clang-format) every C file of src/ and tests/
#   make format-check         fails, naming the lines, where one is not formatted

SANITIZER ?=
ifeq ($(SANITIZER),)
BUILD := build/rel
OPT := -O2 -g
else
BUILD := build/san
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
endif

CC ?= cc
PKGS := libmicrohttpd jansson sqlite3 libcurl libcrypto libpq zlib liblz4
WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Werror -Wno-error=deprecated-declarations
CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
          -MMD -MP -pthread
# libcsv (Debian libcsv-dev) ships no pkg-config file: linked by name.
LDLIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -pthread -lm
LDFLAGS := $(if $(SANITIZER),-fsanitize=$(SANITIZER),)

SRC := $(shell find src -name '*.c' | sort)
LIBSRC := $(filter-out src/main.c,$(SRC))
OBJ := $(LIBSRC:%.c=$(BUILD)/%.o)
# The dashboard's files (ui/) compiled in as a C table: scripts/ui-assets.sh, api/ui.c.
UI_FILES := $(sort $(wildcard $(addprefix ui/*.,html css js svg png json txt)))
OBJ += $(BUILD)/gen/ui_assets.o
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c) $(wildcard tests/store/test_*.c))
UNIT_BIN := $(UNIT_SRC:%.c=$(BUILD)/%)

.PHONY: all deps test-deps run test unit api bench bench-peers load fuzz fuzz-brief clean format format-check \
        test-pg pg-contract pg-api
# The pkg-config flags above are read when make reads this file: on a machine that
# lacks a library, that is before deps installed it (and pkg-config then prints nothing
# at all). So the targets that install first build in a second make, which reads the
# flags again.
all: deps
	@$(MAKE) --no-print-directory $(BUILD)/sluice

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test
	@cd tests/ui && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
	@cd tests/openapi && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
	@cd tests/webhooks && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@printf '  CC      %s\n' $<
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/ui_assets.c: $(UI_FILES) ui scripts/ui-assets.sh
	@mkdir -p $(dir $@)
	@printf '  GEN     %s\n' $@
	@scripts/ui-assets.sh $(UI_FILES) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/ui_assets.o: $(BUILD)/gen/ui_assets.c
	@printf '  CC      %s\n' $<
	@$(CC) $(CFLAGS) -c $< -o $@

# docs/openapi.json, embedded as a C array (served by src/api/openapi.c).
OPENAPI_C := $(BUILD)/gen/openapi_json.c
OBJ += $(OPENAPI_C:.c=.o)
$(OPENAPI_C): docs/openapi.json scripts/embed.sh
	@mkdir -p $(dir $@)
	@printf '  GEN     %s\n' $@
	@scripts/embed.sh docs/openapi.json openapi_json > $@.tmp && mv $@.tmp $@
$(OPENAPI_C:.c=.o): $(OPENAPI_C)
	@printf '  CC      %s\n' $<
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/sluice: $(OBJ) $(BUILD)/src/main.o
	@printf '  LINK    %s\n' $@
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(OBJ) tests/testhelp.h
	@mkdir -p $(dir $@)
	@printf '  TEST    %s\n' $@
	@$(CC) $(CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(OBJ) $(LDLIBS)

# Builds and runs the C unit and store contract tests of one build.
unit: $(UNIT_BIN)
	@scripts/run-unit.sh $(UNIT_BIN)

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/sluice
	@scripts/run.sh $(BUILD)/sluice

# The README's test command. The last line printed is pytest's summary.
test: test-deps
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory SANITIZER=address,undefined all unit
	@$(MAKE) --no-print-directory fuzz-brief
	@scripts/pg-test.sh $(MAKE) --no-print-directory test-pg
	@$(MAKE) --no-print-directory SANITIZER=address,undefined api

# Each fuzz target for a short while, so regressions show (make fuzz runs longer);
# 10 s keeps the whole pass over the eight targets, builds included, near 2 minutes
# (make fuzz runs each for a minute).
FUZZ_BRIEF_SECONDS ?= 10
fuzz-brief:
	@mkdir -p build
	@scripts/fuzz.sh $(FUZZ_BRIEF_SECONDS) > build/fuzz-brief.log 2>&1 \
	  && echo "fuzz: every target ran $(FUZZ_BRIEF_SECONDS)s without a crash (build/fuzz-brief.log)" \
	  || (tail -n 60 build/fuzz-brief.log; echo "fuzz: FAILED"; exit 1)

# The PostgreSQL half of `make test`, run inside scripts/pg-test.sh (a throwaway
# cluster): the contract suite of both builds, each on a fresh database, and the API
# suite against the release build (the sanitizer build runs it on SQLite).
test-pg:
	@$(MAKE) --no-print-directory all pg-contract
	@$(MAKE) --no-print-directory SANITIZER=address,undefined all pg-contract
	@$(MAKE) --no-print-directory pg-api

pg-contract: $(BUILD)/tests/store/test_store_contract $(BUILD)/tests/store/test_pg_migrate
	@echo "store contract suite and schema upgrade on PostgreSQL ($(BUILD)):"
	@db=contract_$$(date +%s%N); "$$SLUICE_TEST_PG_BIN/psql" -X -q "$${SLUICE_TEST_PG_URL}postgres" \
	  -c "CREATE DATABASE $$db" -c "CREATE DATABASE $${db}_m" && \
	  SLUICE_TEST_STORE_URL="$${SLUICE_TEST_PG_URL}$$db" scripts/run-unit.sh $(word 1,$^) && \
	  SLUICE_TEST_STORE_URL="$${SLUICE_TEST_PG_URL}$${db}_m" scripts/run-unit.sh $(word 2,$^)

pg-api: $(BUILD)/sluice
	SLUICE_TEST_STORE=postgres SLUICE_BIN=$(abspath $(BUILD)/sluice) \
	  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api

api: $(BUILD)/sluice
	SLUICE_BIN=$(abspath $(BUILD)/sluice) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api

bench: all
	@scripts/deps.sh bench
	bench/run $(BUILD)/sluice

# graphile-worker (bench/peers, npm), then sluice on SQLite and on a PostgreSQL with fsync on,
# then graphile-worker again; ratios against the mean of the two.
bench-peers: all
	@scripts/deps.sh bench-peers
	cd bench/peers && npm ci --no-audit --no-fund --loglevel=error
	SLUICE_TEST_PG_OPTS="-c fsync=on -c full_page_writes=on" scripts/pg-test.sh \
	  /usr/bin/python3 bench/peers.py --bin $(BUILD)/sluice

# Load during a 1,000,000-item job (wrk), and 100 concurrent 100 MB uploads.
load: all
	@scripts/deps.sh bench
	/usr/bin/python3 bench/load.py --bin $(BUILD)/sluice
	/usr/bin/python3 bench/uploads.py --bin $(BUILD)/sluice

fuzz:
	@scripts/fuzz.sh $${FUZZ_SECONDS:-60}

# The C files clang-format keeps in shape: src/ and tests/, found like SRC, without
# what is generated (build/gen/, outside them) or installed (tests/*/node_modules/).
FORMAT_FILES = $(shell find src tests -name node_modules -prune -o \( -name '*.c' -o -name '*.h' \) \
                 -print | sort)
CLANG_FORMAT ?= clang-format

format:
	@scripts/deps.sh format
	@echo "  FORMAT  $(words $(FORMAT_FILES)) files of src/ and tests/"
	@$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check:
	@scripts/deps.sh format
	@echo "  CHECK   format of $(words $(FORMAT_FILES)) files of src/ and tests/"
	@$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_FILES)

clean:
	rm -rf build

-include $(OBJ:.o=.d) $(BUILD)/src/main.d
