/* Growable byte buffers and the table from byte strings to int32 values (open addressing, keys
 * stored once in one buffer), shared by the tokenizers and the BPE trainer. */
#include "strtable.h"

#include <stdlib.h>
#include <string.h>

/* Returns the (possibly moved) array with room for need elements, or NULL leaving data untouched. */
void *grow_array(void *data, size_t *cap, size_t need, size_t elem)
{
    if (need == 0)
        need = 1; /* so that a successful call always returns a non-NULL array */
    if (need <= *cap)
        return data;
    size_t new_cap = *cap ? *cap : 16;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 4 / elem)
            return NULL;
        new_cap *= 2;
    }
    void *p = realloc(data, new_cap * elem);
    if (p)
        *cap = new_cap;
    return p;
}

/* Keeps a NUL after the bytes so buffers can be returned as C strings. */
int bb_reserve(bytebuf *b, size_t extra)
{
    void *p = grow_array(b->data, &b->cap, b->len + extra + 1, 1);
    if (!p)
        return 0;
    b->data = p;
    return 1;
}

int bb_append(bytebuf *b, const void *src, size_t n)
{
    if (!bb_reserve(b, n))
        return 0;
    if (n)
        memcpy(b->data + b->len, src, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 1;
}

uint64_t pare_fnv1a_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

void strmap_free(strmap *m)
{
    free(m->keys.data);
    free(m->key_off);
    free(m->key_len);
    free(m->hash);
    free(m->val);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

int32_t strmap_find(const strmap *m, const char *k, size_t n)
{
    if (!m->n_slots)
        return -1;
    uint64_t h = pare_fnv1a_hash(k, n);
    size_t mask = m->n_slots - 1;
    for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
        int32_t e = m->slots[s];
        if (e < 0)
            return -1;
        if (m->hash[e] == h && m->key_len[e] == n && memcmp(m->keys.data + m->key_off[e], k, n) == 0)
            return e;
    }
}

static int strmap_rehash(strmap *m, size_t n_slots)
{
    int32_t *slots = malloc(n_slots * sizeof *slots);
    if (!slots)
        return 0;
    memset(slots, 0xff, n_slots * sizeof *slots);
    size_t mask = n_slots - 1;
    for (size_t e = 0; e < m->n; e++) {
        size_t s = (size_t)m->hash[e] & mask;
        while (slots[s] >= 0)
            s = (s + 1) & mask;
        slots[s] = (int32_t)e;
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n_slots;
    return 1;
}

/* Inserts or overwrites; returns the entry index, or -1 when out of memory. */
int32_t strmap_put(strmap *m, const char *k, size_t n, int32_t val)
{
    int32_t e = strmap_find(m, k, n);
    if (e >= 0) {
        m->val[e] = val;
        return e;
    }
    if (m->n >= INT32_MAX - 1)
        return -1;
    if ((m->n + 1) * 2 > m->n_slots && !strmap_rehash(m, m->n_slots ? m->n_slots * 2 : 64))
        return -1;
    if (m->n == m->cap) {
        size_t cap = m->cap;
        void *a = grow_array(m->key_off, &cap, m->n + 1, sizeof(size_t));
        if (!a)
            return -1;
        m->key_off = a;
        cap = m->cap;
        if (!(a = grow_array(m->key_len, &cap, m->n + 1, sizeof(size_t))))
            return -1;
        m->key_len = a;
        cap = m->cap;
        if (!(a = grow_array(m->hash, &cap, m->n + 1, sizeof(uint64_t))))
            return -1;
        m->hash = a;
        cap = m->cap;
        if (!(a = grow_array(m->val, &cap, m->n + 1, sizeof(int32_t))))
            return -1;
        m->val = a;
        m->cap = cap;
    }
    size_t off = m->keys.len;
    if (!bb_append(&m->keys, k, n))
        return -1;
    e = (int32_t)m->n++;
    m->key_off[e] = off;
    m->key_len[e] = n;
    m->hash[e] = pare_fnv1a_hash(k, n);
    m->val[e] = val;
    size_t mask = m->n_slots - 1;
    size_t s = (size_t)m->hash[e] & mask;
    while (m->slots[s] >= 0)
        s = (s + 1) & mask;
    m->slots[s] = e;
    return e;
}

int32_t strmap_get(const strmap *m, const char *k, size_t n)
{
    int32_t e = strmap_find(m, k, n);
    return e < 0 ? -1 : m->val[e];
}
