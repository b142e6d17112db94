/* Replays the fuzz corpus (every file under tests/fuzz/corpus/TARGET: seeds and every input a finding was fixed
 * for) through the fuzz targets: each input must be handled without a crash (and, under `make check`,
 * without a sanitizer report or leak). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "fuzz/targets.h"
#include "harness.h"

static int replay_dir(const fuzz_target *t)
{
    char dir[512];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", t->name);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        unsigned char *data = fixture_read(path, &len);
        if (!data)
            continue;
        t->run(data, len);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

static void test_replay_corpus(void)
{
    for (const fuzz_target *t = fuzz_targets; t->name; t++) {
        int n = replay_dir(t);
        CHECKF(n > 0, "tests/fuzz/corpus/%s: no inputs (every target has seeds)", t->name);
        printf("  %-16s %d inputs\n", t->name, n);
    }
}

void suite_fuzz(void);
void suite_fuzz(void) { RUN(test_replay_corpus); }
