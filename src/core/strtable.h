/* Growable byte buffers and a hash table from byte strings to int32 values, shared by the tokenizer
 * files and the BPE trainer (bpe_train.c). */
#ifndef PARE_STRTABLE_H
#define PARE_STRTABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data;
    size_t len, cap;
} bytebuf;

/* Returns the (possibly moved) array with room for need elements, or NULL leaving data untouched. */
void *grow_array(void *data, size_t *cap, size_t need, size_t elem);
/* Room for extra more bytes plus a NUL; 0 when out of memory. */
int bb_reserve(bytebuf *b, size_t extra);
/* Appends n bytes and keeps a NUL after them; 0 when out of memory. */
int bb_append(bytebuf *b, const void *src, size_t n);

/* FNV-1a of a byte string (integer keys use rng.h's pare_splitmix64_mix). */
uint64_t pare_fnv1a_hash(const char *s, size_t n);

/* Byte strings -> int32: entries numbered in insertion order, keys kept in one buffer. */
typedef struct {
    bytebuf keys;
    size_t *key_off, *key_len;
    uint64_t *hash;
    int32_t *val;
    size_t n, cap;
    int32_t *slots; /* entry index, -1 when empty */
    size_t n_slots; /* a power of two */
} strmap;

void strmap_free(strmap *m);
/* The entry index of k, or -1. */
int32_t strmap_find(const strmap *m, const char *k, size_t n);
/* Inserts or overwrites; returns the entry index, or -1 when out of memory. */
int32_t strmap_put(strmap *m, const char *k, size_t n, int32_t val);
/* The value stored for k, or -1. */
int32_t strmap_get(const strmap *m, const char *k, size_t n);

#endif
