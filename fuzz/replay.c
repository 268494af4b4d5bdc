/* Licensed under the Apache License, Version 2.0.
 *
 * A main() for a fuzz target without libFuzzer: every FILE given, and every
 * regular file in every DIR given, runs once through
 * LLVMFuzzerTestOneInput (in name order).  Built with gcc by
 * "fuzz/run.sh --replay" into build/fuzz-replay-NAME; t/06-fuzz-replay.t
 * runs it over fuzz/corpus/NAME and fuzz/crashes/NAME.
 *
 *   build/fuzz-replay-NAME [-v] DIR|FILE...
 *
 * Prints "replayed N inputs" and exits 0; a crash is a crash (abort, or a
 * sanitizer report when built with SANITIZE=1).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int verbose;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;

    if (f == NULL) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0) {
        fclose(f);
        return -1;
    }
    /* exactly n bytes: an over-read is caught under ASan */
    buf = malloc(n ? (size_t)n : 1);
    if (buf == NULL || (n && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    if (verbose) {
        fprintf(stderr, "replay %s (%ld bytes)\n", path, n);
    }
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int i, count = 0, failed = 0;

    if (argc > 1 && !strcmp(argv[1], "-v")) {
        verbose = 1;
        argv++;
        argc--;
    }
    if (LLVMFuzzerInitialize(&argc, &argv) != 0) {
        fprintf(stderr, "LLVMFuzzerInitialize failed\n");
        return 1;
    }
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            continue;               /* no crashes/NAME yet: nothing to do */
        }
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            char **names = NULL;
            size_t n = 0, cap = 0, k;
            while (d && (e = readdir(d)) != NULL) {
                char *path;
                struct stat fst;
                if (e->d_name[0] == '.') {
                    continue;
                }
                size_t plen = strlen(argv[i]) + strlen(e->d_name) + 2;
                if ((path = malloc(plen)) == NULL) {
                    abort();
                }
                snprintf(path, plen, "%s/%s", argv[i], e->d_name);
                if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode)) {
                    free(path);
                    continue;
                }
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    names = realloc(names, cap * sizeof(*names));
                    if (names == NULL) {
                        abort();
                    }
                }
                names[n++] = path;
            }
            if (d) {
                closedir(d);
            }
            if (n) {
                qsort(names, n, sizeof(*names), by_name);
            }
            for (k = 0; k < n; k++) {
                if (run_file(names[k]) == 0) {
                    count++;
                }
                else {
                    failed++;
                }
                free(names[k]);
            }
            free(names);
        }
        else if (run_file(argv[i]) == 0) {
            count++;
        }
        else {
            failed++;
        }
    }
    scep_fuzz_teardown();
    printf("replayed %d inputs\n", count);
    return failed ? 1 : 0;
}
