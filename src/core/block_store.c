/* Streamed block weights: a model larger than memory keeps its decoder blocks' linear weights in the
 * mapped safetensors files, as stored (BF16, F16 or F32), and converts a block to fp32 when a pass
 * acquires it, into a cache of such blocks bounded in bytes that drops the least recently used
 * unreferenced block first. Memory is then set by the cache, not by the model's depth. */
#include "block_store.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "init_model.h"
#include "memcheck.h"

typedef struct pare_block_store pare_block_store;

/* Where a spilled linear's weights (or factors) and bias are in the spill file, pare_linear's heap
 * layout, followed by its mask one bit per entry (a byte per entry in the cache, as pare_linear
 * holds it). Its channel maps stay in memory: they are small, and what plans and exports count. */
typedef struct {
    off_t off;
    size_t heap_floats;  /* weights (or A and B), then the bias */
    size_t mask_entries; /* out * in for a masked linear, else 0 */
    size_t bytes;        /* its room in the cache: the floats, then the mask, each rounded up to 8 bytes */
    size_t file_bytes;   /* what it takes in the spill file */
    int half;            /* floats stored as the upper 16 bits of each (all of them were BF16 values) */
} spill_rec;

/* Values a spill writes at a time when it narrows them (and bytes of mask bits it packs or unpacks). */
#define SPILL_CHUNK 65536

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

/* A spilled linear's bias pointer while it is not acquired: only whether it has one is known. */
static float no_bias_data;

struct pare_block_store {
    pare_safetensors st; /* open and mapped for the model's lifetime */
    int n_layers;
    float **buf;    /* [L] block l's fp32 weights, or NULL when not resident */
    size_t *bytes;  /* [L] what buf[l] takes */
    int *refs;      /* [L] acquisitions not yet released */
    uint64_t *used; /* [L] clock of the last acquisition */
    uint64_t clock;
    size_t budget;    /* bytes the cache may hold (at least the largest block) */
    size_t resident;  /* bytes it holds */
    size_t converted; /* blocks converted since open */
    pthread_mutex_t lock;
    /* Compressed blocks, once released, are written to an unlinked temporary file and read back
     * like the stored ones: a compressed model takes no more memory than the cache either. */
    FILE *spill;
    off_t spill_end;
    spill_rec *recs;      /* [L * PARE_LIN_KINDS] */
    pare_status spill_rc; /* a spill that failed (its data stayed in memory), reported at the next acquire */
    pare_error spill_err;
};

/* Points block l's streamed linears into buf (NULL: none), in kind order. */
static void point_block(const pare_model *m, int l, float *buf)
{
    pare_block *b = &m->blocks[l];
    for (int k = 0; k < PARE_LIN_KINDS; k++) {
        pare_linear *lin = &b->lin[k];
        if (!lin->out || lin->streamed != PARE_LIN_STORED)
            continue;
        lin->w = buf;
        if (buf)
            buf += (size_t)lin->orig_out * lin->orig_in;
    }
}

size_t pare_block_store_bytes(const pare_model *m, int l)
{
    size_t n = 0;
    const pare_block *b = &m->blocks[l];
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (b->lin[k].out && b->lin[k].streamed == PARE_LIN_STORED)
            n += (size_t)b->lin[k].orig_out * b->lin[k].orig_in;
    n *= sizeof(float);
    for (int k = 0; k < PARE_LIN_KINDS && m->store; k++)
        if (b->lin[k].out && b->lin[k].streamed == PARE_LIN_SPILLED)
            n += m->store->recs[(size_t)l * PARE_LIN_KINDS + k].bytes;
    return n;
}

/* Reads n mask entries, stored one bit each from off in the spill file, into mask[n] as 0 / 1 bytes. */
static pare_status read_mask(pare_block_store *s, off_t off, uint8_t *mask, size_t n)
{
    uint8_t bits[SPILL_CHUNK];
    for (size_t at = 0; at < n; at += (size_t)8 * SPILL_CHUNK) {
        size_t entries = n - at < (size_t)8 * SPILL_CHUNK ? n - at : (size_t)8 * SPILL_CHUNK, nb = (entries + 7) / 8;
        ssize_t got = pread(fileno(s->spill), bits, nb, off + (off_t)(at / 8));
        if (got != (ssize_t)nb) {
            if (got >= 0)
                errno = EIO; /* the file is shorter than what was written to it */
            return PARE_EIO;
        }
        for (size_t j = 0; j < entries; j++)
            mask[at + j] = (uint8_t)(bits[j / 8] >> (j % 8) & 1);
    }
    return PARE_OK;
}

/* Writes mask[n] at off in the spill file, one bit per entry. Returns the bytes written or -1. */
static ssize_t spill_write_mask(pare_block_store *s, const uint8_t *mask, size_t n, off_t off)
{
    uint8_t bits[SPILL_CHUNK];
    size_t done = 0;
    for (size_t at = 0; at < n; at += (size_t)8 * SPILL_CHUNK) {
        size_t entries = n - at < (size_t)8 * SPILL_CHUNK ? n - at : (size_t)8 * SPILL_CHUNK, nb = (entries + 7) / 8;
        memset(bits, 0, nb);
        for (size_t j = 0; j < entries; j++)
            bits[j / 8] |= (uint8_t)((mask[at + j] != 0) << (j % 8));
        ssize_t w = pwrite(fileno(s->spill), bits, nb, off + (off_t)(at / 8));
        if (w < 0)
            return -1;
        done += (size_t)w;
        if ((size_t)w != nb)
            break;
    }
    return (ssize_t)done;
}

/* Reads block l's spilled linears into buf (after its stored weights) and points them there. */
static pare_status read_spilled(const pare_model *m, int l, unsigned char *buf, pare_error *err)
{
    pare_block_store *s = m->store;
    pare_block *b = &m->blocks[l];
    for (int k = 0; k < PARE_LIN_KINDS; k++) {
        pare_linear *lin = &b->lin[k];
        if (!lin->out || lin->streamed != PARE_LIN_SPILLED)
            continue;
        const spill_rec *r = &s->recs[(size_t)l * PARE_LIN_KINDS + k];
        size_t n = r->heap_floats, size = r->half ? 2 : 4;
        unsigned char *at = r->half ? buf + 2 * n : buf; /* half-width values land in the upper half */
        if (pread(fileno(s->spill), at, n * size, r->off) != (ssize_t)(n * size))
            return pare_fail(err, PARE_EIO, "%s: reading block %d's compressed %s back from the spill file: %s",
                             m->path, l, lin->name, strerror(errno));
        /* widened in place from the front: value i is read (bytes 2n + 2i) before float i overwrites
         * bytes 4i .. 4i + 3, which only reach values already widened */
        for (size_t i = 0; r->half && i < n; i++) {
            uint16_t h;
            memcpy(&h, at + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(buf + 4 * i, &u, 4);
        }
        float *f = (float *)(void *)buf;
        size_t wf = r->heap_floats - (lin->b ? (size_t)lin->out : 0);
        if (lin->kind == PARE_LIN_FACTORED) {
            lin->A = f;
            lin->B = f + (size_t)lin->out * lin->rank;
        } else {
            lin->w = f;
        }
        lin->b = lin->b ? f + wf : NULL;
        if (r->mask_entries) {
            uint8_t *mask = buf + round8(n * sizeof(float));
            pare_status rc = read_mask(s, r->off + (off_t)(n * size), mask, r->mask_entries);
            if (rc)
                return pare_fail(err, PARE_EIO, "%s: reading block %d's %s mask back from the spill file: %s", m->path,
                                 l, lin->name, strerror(errno));
            lin->mask = mask;
        }
        buf += r->bytes;
    }
    return PARE_OK;
}

/* A spilled linear loses its views of the cache (the bias pointer keeps saying whether there is one). */
static void unview(pare_linear *lin)
{
    lin->w = lin->A = lin->B = NULL;
    lin->mask = NULL;
    lin->b = lin->b ? &no_bias_data : NULL;
}

/* Block l's spilled linears lose their views of the cache. */
static void unpoint_spilled(const pare_model *m, int l)
{
    pare_block *b = &m->blocks[l];
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (b->lin[k].out && b->lin[k].streamed == PARE_LIN_SPILLED)
            unview(&b->lin[k]);
}

/* Whether every value is a BF16 value (masked or sliced weights of a BF16 checkpoint, or weights
 * rounded for --factor-dtype bf16): the spill file then keeps their upper 16 bits, half the bytes,
 * and loses nothing. */
static int all_bf16(const float *v, size_t n)
{
    const uint32_t *u = (const uint32_t *)(const void *)v;
    size_t i = 0;
    while (i < n && (u[i] & 0xffff) == 0)
        i++;
    return i == n;
}

/* Writes v[n] at off in the spill file, as the upper 16 bits of each float when half. Returns the
 * bytes written or -1. */
static ssize_t spill_write(pare_block_store *s, const float *v, size_t n, off_t off, int half)
{
    const uint32_t *u = (const uint32_t *)(const void *)v;
    if (!half)
        return pwrite(fileno(s->spill), v, n * sizeof(float), off);
    uint16_t chunk[SPILL_CHUNK];
    size_t done = 0;
    for (size_t at = 0; at < n; at += SPILL_CHUNK) {
        size_t m = n - at < SPILL_CHUNK ? n - at : SPILL_CHUNK;
        for (size_t j = 0; j < m; j++)
            chunk[j] = (uint16_t)(u[at + j] >> 16);
        ssize_t w = pwrite(fileno(s->spill), chunk, m * 2, off + (off_t)(2 * at));
        if (w < 0)
            return -1;
        done += (size_t)w;
        if ((size_t)w != m * 2)
            break;
    }
    return (ssize_t)done;
}

/* Writes block l's compressed (owned) linears to the spill file and frees their arrays. A failure
 * leaves them in memory and is kept for the next acquire to report. */
static void spill_block(const pare_model *m, int l)
{
    pare_block_store *s = m->store;
    pare_block *b = &m->blocks[l];
    if (s->spill_rc)
        return;
    if (!s->spill && !(s->spill = tmpfile())) {
        s->spill_rc = pare_fail(&s->spill_err, PARE_EIO, "%s: cannot create the spill file for compressed blocks: %s",
                                m->path, strerror(errno));
        return;
    }
    for (int k = 0; k < PARE_LIN_KINDS; k++) {
        pare_linear *lin = &b->lin[k];
        if (!lin->out || lin->streamed != PARE_LIN_OWNED || !lin->heap)
            continue;
        spill_rec r = {s->spill_end, 0, 0, 0, 0, 0};
        r.heap_floats = (lin->kind == PARE_LIN_FACTORED ? (size_t)lin->rank * ((size_t)lin->out + lin->in)
                                                        : (size_t)lin->out * lin->in) +
                        (lin->b ? (size_t)lin->out : 0);
        r.mask_entries = lin->mask ? (size_t)lin->out * lin->in : 0;
        /* rounded so that the next linear's floats stay aligned */
        r.bytes = round8(r.heap_floats * sizeof(float)) + round8(r.mask_entries);
        r.half = all_bf16(lin->heap, r.heap_floats);
        size_t float_bytes = r.heap_floats * (r.half ? 2 : 4);
        r.file_bytes = float_bytes + (r.mask_entries + 7) / 8;
        /* a linear spilled before (compressed, then rounded for --factor-dtype) reuses its place when
         * it fits there, so the file does not grow by a copy per pass */
        const spill_rec *before = &s->recs[(size_t)l * PARE_LIN_KINDS + k];
        int reuse = before->file_bytes && r.file_bytes <= round8(before->file_bytes);
        if (reuse)
            r.off = before->off;
        ssize_t wrote = spill_write(s, lin->heap, r.heap_floats, r.off, r.half);
        if (wrote == (ssize_t)float_bytes && r.mask_entries) {
            ssize_t bits = spill_write_mask(s, lin->mask, r.mask_entries, r.off + (off_t)float_bytes);
            wrote = bits < 0 ? -1 : wrote + bits;
        }
        if (wrote != (ssize_t)r.file_bytes) {
            s->spill_rc = pare_fail(&s->spill_err, PARE_EIO,
                                    "%s: writing block %d's compressed %s to the spill file (a temporary file): %s",
                                    m->path, l, lin->name, wrote < 0 ? strerror(errno) : "disk full");
            return;
        }
        if (reuse)
            r.file_bytes = before->file_bytes; /* the slot keeps its size for the next reuse */
        else
            s->spill_end += (off_t)round8(r.file_bytes);
        s->recs[(size_t)l * PARE_LIN_KINDS + k] = r;
        if (lin->mask) /* counted now: parameter counts read it while the mask is away */
            lin->mask_kept = pare_linear_mask_kept(lin);
        free(lin->heap);
        free(lin->mask);
        lin->heap = NULL;
        lin->streamed = PARE_LIN_SPILLED;
        unview(lin);
    }
}

pare_status pare_block_store_open(pare_model *m, pare_safetensors *st, size_t budget, pare_error *err)
{
    int L = m->cfg.n_layers;
    pare_block_store *s = calloc(1, sizeof *s);
    if (s) {
        s->buf = calloc((size_t)L, sizeof *s->buf);
        s->bytes = calloc((size_t)L, sizeof *s->bytes);
        s->refs = calloc((size_t)L, sizeof *s->refs);
        s->used = calloc((size_t)L, sizeof *s->used);
        s->recs = calloc((size_t)L * PARE_LIN_KINDS, sizeof *s->recs);
    }
    if (!s || !s->buf || !s->bytes || !s->refs || !s->used || !s->recs) {
        if (s) {
            free(s->buf);
            free(s->bytes);
            free(s->refs);
            free(s->used);
            free(s->recs);
        }
        free(s);
        pare_st_close(st);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory for the block cache's tables", m->path);
    }
    s->st = *st;
    memset(st, 0, sizeof *st);
    s->n_layers = L;
    s->budget = budget;
    pthread_mutex_init(&s->lock, NULL);
    m->store = s;
    return PARE_OK;
}

void pare_block_store_free(pare_model *m)
{
    pare_block_store *s = m->store;
    if (!s)
        return;
    for (int l = 0; l < s->n_layers; l++) {
        if (s->buf[l]) {
            point_block(m, l, NULL);
            unpoint_spilled(m, l);
        }
        free(s->buf[l]);
    }
    if (s->spill)
        fclose(s->spill);
    free(s->recs);
    pare_st_close(&s->st);
    pthread_mutex_destroy(&s->lock);
    free(s->buf);
    free(s->bytes);
    free(s->refs);
    free(s->used);
    free(s);
    m->store = NULL;
}

int pare_model_streamed(const pare_model *m) { return m->store != NULL; }

/* Drops block l's buffer; its streamed linears lose their weights until the next acquisition (the
 * compressed ones own theirs and keep them). */
static void drop(const pare_model *m, int l)
{
    pare_block_store *s = m->store;
    point_block(m, l, NULL);
    unpoint_spilled(m, l);
    free(s->buf[l]);
    s->buf[l] = NULL;
    s->resident -= s->bytes[l];
    s->bytes[l] = 0;
    /* hand the freed block back to the system now: glibc keeps large freed chunks in its arenas (and
     * raises its mmap threshold after such frees), which would make the cache's bound a fiction */
    malloc_trim(0);
}

pare_status pare_block_acquire(const pare_model *m, int l, pare_error *err)
{
    pare_block_store *s = m->store;
    if (!s)
        return PARE_OK;
    pthread_mutex_lock(&s->lock);
    pare_status rc = PARE_OK;
    if (s->spill_rc) { /* a compressed block could not be put away: its data is still here, but stop */
        if (err)
            *err = s->spill_err;
        rc = s->spill_rc;
        goto done;
    }
    s->used[l] = ++s->clock;
    if (s->buf[l]) {
        s->refs[l]++;
        goto done;
    }
    size_t need = pare_block_store_bytes(m, l);
    if (need == 0) { /* every linear of the block owns its weights (compressed) */
        s->refs[l]++;
        goto done;
    }
    while (s->resident + need > s->budget) { /* least recently used, unreferenced, first */
        int victim = -1;
        for (int j = 0; j < s->n_layers; j++)
            if (s->buf[j] && !s->refs[j] && (victim < 0 || s->used[j] < s->used[victim]))
                victim = j;
        if (victim < 0)
            break;
        drop(m, victim);
    }
    if (s->resident + need > s->budget && s->resident) {
        char a[32], b[32];
        pare_format_bytes(need, a, sizeof a);
        pare_format_bytes(s->budget, b, sizeof b);
        rc = pare_fail(err, PARE_ENOMEM,
                       "%s: block %d (%s in fp32) does not fit the block cache (%s) beside the blocks in use", m->path,
                       l, a, b);
        goto done;
    }
    char what[sizeof m->path + 64];
    snprintf(what, sizeof what, "%s: block %d's weights in fp32", m->path, l);
    if ((rc = pare_memory_check(need, what, err)))
        goto done;
    float *buf = malloc(need);
    if (!buf) {
        rc = pare_fail(err, PARE_ENOMEM, "%s: out of memory for block %d's weights (%.1f MiB)", m->path, l,
                       (double)need / (1 << 20));
        goto done;
    }
    point_block(m, l, buf);
    size_t stored = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++)
        if (m->blocks[l].lin[k].out && m->blocks[l].lin[k].streamed == PARE_LIN_STORED)
            stored += (size_t)m->blocks[l].lin[k].orig_out * m->blocks[l].lin[k].orig_in * sizeof(float);
    if ((rc = pare_model_read_block(m, &s->st, l, err)) ||
        (rc = read_spilled(m, l, (unsigned char *)buf + stored, err))) {
        point_block(m, l, NULL);
        unpoint_spilled(m, l);
        free(buf);
        goto done;
    }
    s->buf[l] = buf;
    s->bytes[l] = need;
    s->resident += need;
    s->refs[l] = 1;
    s->converted++;
done:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void pare_block_release(const pare_model *m, int l)
{
    pare_block_store *s = m->store;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->refs[l] > 0)
        s->refs[l]--;
    if (!s->refs[l]) {
        int owned = 0; /* compressed linears: put away, so the cache bounds a compressed model too */
        for (int k = 0; k < PARE_LIN_KINDS; k++)
            owned |= m->blocks[l].lin[k].out && m->blocks[l].lin[k].streamed == PARE_LIN_OWNED &&
                     m->blocks[l].lin[k].heap;
        if (owned) {
            spill_block(m, l);
            if (s->buf[l]) /* laid out for the block as it was */
                drop(m, l);
            else
                malloc_trim(0); /* the spilled arrays, as drop does for a buffer */
        }
    }
    pthread_mutex_unlock(&s->lock);
}

void pare_model_cache_drop(const pare_model *m)
{
    pare_block_store *s = m->store;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    for (int l = 0; l < s->n_layers; l++)
        if (s->buf[l] && !s->refs[l]) /* as the least recently used are dropped when the cache is full */
            drop(m, l);
    pthread_mutex_unlock(&s->lock);
}

int pare_model_blocks_fit(const pare_model *m)
{
    const pare_block_store *s = m->store;
    if (!s)
        return 1;
    size_t all = 0;
    for (int l = 0; l < s->n_layers; l++)
        all += pare_block_store_bytes(m, l);
    return all <= s->budget;
}

size_t pare_model_blocks_converted(const pare_model *m) { return m->store ? m->store->converted : 0; }
size_t pare_model_cache_budget(const pare_model *m) { return m->store ? m->store->budget : 0; }

/* The fp32 floats of block l's linear weights under config c. */
static size_t config_block_floats(const pare_config *c)
{
    size_t n = 0;
    for (int k = 0; k < PARE_LIN_KINDS; k++) {
        int out, in;
        pare_lin_shape(c, (pare_lin_kind)k, &out, &in);
        n += (size_t)out * in;
    }
    return n;
}

pare_status pare_memory_plan_make(const pare_config *c, size_t stored_bytes, pare_memory_plan *p, pare_error *err)
{
    memset(p, 0, sizeof *p);
    pare_param_counts pc;
    pare_status rc = pare_config_param_counts(c, &pc, err);
    if (rc)
        return rc;
    size_t block = config_block_floats(c) * sizeof(float);
    size_t rope = c->arch == PARE_ARCH_GPT2 ? 0 : (size_t)c->max_pos * c->head_dim * (c->rope_local_theta > 0 ? 2 : 1);
    size_t all = (pc.total + rope) * sizeof(float);
    size_t resident = all - block * (size_t)c->n_layers;
    uint64_t limit = pare_memory_available();
    pare_stream_mode mode = pare_get_stream_mode();
    p->limit_bytes = limit;
    p->block_bytes = block;
    p->streamed = mode == PARE_STREAM_ON || (mode == PARE_STREAM_AUTO && limit && all > limit / 4 * 3);
    p->resident_bytes = p->streamed ? resident : all;
    if (!p->streamed)
        return PARE_OK;
    p->mapped_bytes = stored_bytes;
    if (mode == PARE_STREAM_ON || !limit) {
        p->cache_bytes = block;
        return PARE_OK;
    }
    /* half of what the resident part leaves, the other half for activations and statistics */
    if (limit < resident + block) {
        char r[32], b[32], l[32];
        pare_format_bytes(resident, r, sizeof r);
        pare_format_bytes(block, b, sizeof b);
        pare_format_bytes(limit, l, sizeof l);
        return pare_fail(err, PARE_ENOMEM,
                         "too large even streamed: embeddings, head and norms take %s in fp32 and one decoder block "
                         "%s, more than the %s available%s%s%s",
                         r, b, l, pare_memory_limit_source() ? " (" : "",
                         pare_memory_limit_source() ? pare_memory_limit_source() : "",
                         pare_memory_limit_source() ? ")" : "");
    }
    size_t cache = (limit - resident) / 2;
    p->cache_bytes = cache < block ? block : cache;
    return PARE_OK;
}

pare_status pare_block_store_clone(const pare_model *src, pare_model *dst, pare_error *err)
{
    dst->store = NULL;
    if (!src->store)
        return PARE_OK;
    if (src->store->spill_end)
        return pare_fail(err, PARE_EUNSUPPORTED,
                         "%s: a streamed model with compressed blocks put away cannot be copied; export it and load "
                         "the export",
                         src->path);
    for (int l = 0; l < dst->cfg.n_layers; l++)
        point_block(dst, l, NULL); /* they viewed src's buffers */
    pare_safetensors st;
    pare_status rc = pare_st_open_dir(src->path, &st, err);
    return rc ? rc : pare_block_store_open(dst, &st, src->store->budget, err);
}

void pare_model_memory_plan(const pare_model *m, pare_memory_plan *p)
{
    memset(p, 0, sizeof *p);
    p->limit_bytes = pare_memory_available();
    p->streamed = m->store != NULL;
    p->resident_bytes = m->slab_floats * sizeof(float);
    p->mapped_bytes = m->store ? m->stored_bytes : 0;
    p->cache_bytes = m->store ? m->store->budget : 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        size_t b = 0;
        for (int k = 0; k < PARE_LIN_KINDS; k++)
            b += (size_t)m->blocks[l].lin[k].orig_out * m->blocks[l].lin[k].orig_in * sizeof(float);
        p->block_bytes = b > p->block_bytes ? b : p->block_bytes;
    }
}
