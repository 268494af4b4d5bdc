# mod_scep: SCEP (RFC 8894) for Apache httpd.  See README.
#
#   make deps    install the Debian packages needed (root), else print the command
#   make         build build/mod_scep.so, build/libscep.a and the tools
#   make run     demo PKI + httpd on 127.0.0.1:$(PORT) in the foreground
#   make test    the whole suite (unit, Apache::Test, interop), then the
#                unit and integration tests again with ASan+UBSan (build/asan)
#   make test SANITIZE=1   only the whole suite, sanitized (build/asan)
#   make install install the module with apxs
#   make test-farm  the farm scenario alone (PostgreSQL, two nodes, a balancer)
#   make bench   the benchmark (bench/results.json, docs/performance.md)
#   make bench-scale  1M-row store, CRL of 100k, memory over 100k enrollments
#                (bench/scale.json, about 12 minutes; not part of test)
#   make fuzz    run every libFuzzer target for a bounded time

APXS     ?= $(shell command -v apxs 2>/dev/null || echo /usr/bin/apxs)
PORT     ?= 8080
CHALLENGE ?= otp

# Every path from apxs -q (evaluated lazily: apxs may not be there before deps)
AP_INC    = $(shell $(APXS) -q INCLUDEDIR)
APR_CFG   = $(shell $(APXS) -q APR_CONFIG)
APU_CFG   = $(shell $(APXS) -q APU_CONFIG)
AP_CC     = $(shell $(APXS) -q CC)
APR_INC   = $(shell $(APR_CFG) --includes) $(shell $(APU_CFG) --includes)
APR_CPP   = $(shell $(APR_CFG) --cppflags)
APR_LIBS  = $(shell $(APU_CFG) --link-ld) $(shell $(APR_CFG) --link-ld)
HTTPD     = $(shell $(APXS) -q SBINDIR)/$(shell $(APXS) -q TARGET)

WARN     = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
           -Wstrict-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(CFLAGS) -fPIC $(WARN) -Iinclude -Isrc $(APR_CPP) $(APR_INC) \
           $(SAN_CFLAGS)
SSL_LIBS = -lssl -lcrypto

# SANITIZE=1: AddressSanitizer and UndefinedBehaviorSanitizer, built in a
# directory of their own (build/asan) so that the plain build is not
# clobbered; "make B=DIR" chooses another build directory.
ifeq ($(SANITIZE),1)
SAN_CFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer
B = build/asan
else
B = build
endif
# What "make test" runs sanitized after the whole plain suite (with the
# unit tests; t/run-tests.sh SCEP_TESTS): every integration test but the
# Debian package build (it builds and checks its own, unsanitized, module)
# and the documentation checks (no C code runs).
SAN_TESTS ?= $(filter-out t/81-debian.t t/83-docs.t,$(sort $(wildcard t/*.t)))
CORE_SRC  = $(wildcard src/scep_*.c) $(wildcard src/ca_*.c)
GLUE_SRC  = mod_scep.c $(wildcard src/mod_scep_*.c)
CORE_OBJ  = $(patsubst %.c,$(B)/%.o,$(CORE_SRC))
GLUE_OBJ  = $(patsubst %.c,$(B)/%.o,$(GLUE_SRC))
HDRS      = $(wildcard include/*.h src/*.h)
TOOLS_SRC = $(wildcard tools/*.c)
TOOLS     = $(patsubst tools/%.c,$(B)/%,$(TOOLS_SRC))
UNIT_SRC  = $(wildcard t/unit/test_*.c)
UNITS     = $(patsubst t/unit/%.c,$(B)/t/%,$(UNIT_SRC))
UNIT_COMMON = $(wildcard t/unit/tap.c)

.PHONY: all deps build run test test-sanitized test-unit test-farm bench \
        bench-scale fuzz install install-headers clean check-deps FORCE

all: build
build: $(B)/mod_scep.so $(B)/libscep.a $(TOOLS) $(UNITS)

# The flags stamp: rewritten only when the compiler or its flags change
# (SANITIZE, CFLAGS, LDFLAGS), and every object and program depends on it, so a
# build directory never mixes objects built two ways.
FLAGS_STAMP = $(B)/.cflags
FLAGS_NOW = $(AP_CC) $(CFLAGS) $(WARN) $(SAN_CFLAGS) $(LDFLAGS)
$(FLAGS_STAMP): FORCE
	@mkdir -p $(B)
	@printf '%s\n' '$(subst ','\'',$(FLAGS_NOW))' > $@.tmp; \
	if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
FORCE:

$(B)/%.o: %.c $(HDRS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(AP_CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/mod_scep.o $(B)/src/mod_scep_%.o: ALL_CFLAGS += -I$(AP_INC)

$(B)/libscep.a: $(CORE_OBJ)
	@mkdir -p $(B)
	rm -f $@ && ar rcs $@ $^

$(B)/mod_scep.so: $(GLUE_OBJ) $(B)/libscep.a $(FLAGS_STAMP)
	$(AP_CC) -shared $(LDFLAGS) -o $@ $(GLUE_OBJ) $(B)/libscep.a $(SSL_LIBS) $(SAN_CFLAGS)

$(B)/%: tools/%.c $(B)/libscep.a $(HDRS) $(FLAGS_STAMP)
	$(AP_CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libscep.a $(APR_LIBS) $(SSL_LIBS)

$(B)/t/%: t/unit/%.c $(UNIT_COMMON) $(B)/libscep.a $(HDRS) t/unit/tap.h \
          $(FLAGS_STAMP)
	@mkdir -p $(B)/t
	$(AP_CC) $(ALL_CFLAGS) $(LDFLAGS) -It/unit -o $@ $< $(UNIT_COMMON) $(B)/libscep.a $(APR_LIBS) $(SSL_LIBS)

# ---- Debian packages -------------------------------------------------------
DEB_PKGS = apache2 apache2-dev libssl-dev openssl libaprutil1-dbd-sqlite3 \
           libapache2-mod-perl2 perl scep strongswan-pki \
           libstrongswan-extra-plugins certmonger sqlite3 curl make gcc \
           chromium chromium-driver softhsm2 libengine-pkcs11-openssl \
           opensc postgresql libaprutil1-dbd-pgsql dpkg-dev debhelper \
           clang libclang-rt-14-dev llvm libsqlite3-dev strace

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
	  echo "deps: missing packages; run as root:"; \
	  echo "  apt-get update && apt-get install -y$$missing"; exit 1; \
	fi

# ---- demo ------------------------------------------------------------------
run: deps build
	@SCEP_BUILD=$(B) sh tools/mkrun.sh "$(CURDIR)" "$(PORT)" "$(HTTPD)" "$(CHALLENGE)"
	exec $(HTTPD) -d "$(CURDIR)/run" -f "$(CURDIR)/run/httpd.conf" -DFOREGROUND

# ---- tests -----------------------------------------------------------------
# The whole suite with this build; then, unless this already was the
# sanitized build, the unit and integration tests ($(SAN_TESTS)) again with
# a sanitized build in $(B)/asan.  Both must pass; prove's summary of the
# last pass is the last thing printed.
test: deps build
	SCEP_BUILD=$(B) sh t/run-tests.sh "$(APXS)"
ifneq ($(SANITIZE),1)
	@$(MAKE) --no-print-directory SANITIZE=1 B=$(B)/asan test-sanitized
endif

# the second pass of "make test" alone
test-sanitized: deps
ifeq ($(SANITIZE),1)
	@$(MAKE) --no-print-directory build
	@echo "make test: the unit tests and $(words $(SAN_TESTS)) integration tests again, sanitized ($(B))"
	@SCEP_BUILD=$(B) SCEP_TESTS="$(SAN_TESTS)" sh t/run-tests.sh "$(APXS)"
else
	@$(MAKE) --no-print-directory SANITIZE=1 B=$(B)/asan test-sanitized
endif

test-unit: build
	prove $(UNITS)

test-farm: deps build
	SCEP_BUILD=$(B) prove -I t/lib t/70-farm.t

bench: deps build
	sh bench/run.sh

bench-scale: deps build
	sh bench/scale.sh

fuzz: build
	sh fuzz/run.sh

# the public header, for out-of-tree providers (apxs -I$(DESTDIR)$(AP_INC))
install-headers:
	install -d $(DESTDIR)$(AP_INC)
	install -m 644 include/mod_scep.h $(DESTDIR)$(AP_INC)/mod_scep.h

install: build install-headers
	$(APXS) -i -n scep $(B)/mod_scep.so

clean:
	rm -rf $(B) t/logs t/conf/httpd.conf t/conf/apache_test_config.pm \
	       t/conf/extra.conf t/conf/modperl* t/htdocs/index.html t/tmp
