/* The random streams and hash mixers of pare, in one place: splitmix64 (calibration windows, training
 * windows, test matrices, initial weights), xorshift64* (sampling), the two 64-bit finalizers of the
 * hash tables, and the uniform and normal draws built on them. Every stream follows from its seed
 * alone, so the same seed gives the same numbers on every run. */
#ifndef PARE_RNG_H
#define PARE_RNG_H

#include <math.h>
#include <stdint.h>

/* splitmix64's output function (Stafford's variant 13): a bijection of 64-bit words whose every
 * output bit depends on every input bit; on its own, a hash of a key for a hash table. */
static inline uint64_t pare_splitmix64_mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The next value of the splitmix64 stream in *state (advanced by the golden-ratio increment). */
static inline uint64_t pare_splitmix64(uint64_t *state) { return pare_splitmix64_mix(*state += 0x9E3779B97F4A7C15ull); }

/* A 64-bit hash of (a, b, c): chained splitmix64, so nearby inputs give unrelated outputs. */
static inline uint64_t pare_hash3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = a;
    s = pare_splitmix64(&s) ^ b;
    s = pare_splitmix64(&s) ^ c;
    return pare_splitmix64(&s);
}

/* MurmurHash3's 64-bit finalizer (fmix64): another avalanching bijection, the BPE trainer's key hash. */
static inline uint64_t pare_murmur3_fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* The next value of the xorshift64* stream in *state (Vigna's multiplier; *state must not be 0). */
static inline uint64_t pare_xorshift64star(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1Dull;
}

/* A uniform double from the top 53 bits of x: (k + offset) 2^-53 with k in [0, 2^53). offset 0 gives
 * [0, 1), 0.5 the open (0, 1), 1 gives (0, 1]. */
static inline double pare_unit_double(uint64_t x, double offset) { return ((double)(x >> 11) + offset) * 0x1.0p-53; }

/* Box–Muller: two independent standard normals from u1 in (0, 1] and u2 in [0, 1]; returns one and
 * stores the other in *spare. */
static inline double pare_box_muller(double u1, double u2, double *spare)
{
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    *spare = rad * sin(th);
    return rad * cos(th);
}

/* Standard normals from a splitmix64 stream, both values of each Box–Muller pair used. The two
 * uniforms of a pair are pare_unit_double(draw, u1_offset) and (draw, u2_offset): the users were
 * seeded with different offsets, kept so that their seeds give the numbers they always gave. */
typedef struct {
    uint64_t state;   /* splitmix64 state: the seed */
    double u1_offset; /* > 0, so that log(u1) is finite */
    double u2_offset;
    int have; /* 1: spare holds the second value of the last pair */
    double spare;
} pare_normal_rng;

static inline double pare_normal(pare_normal_rng *r)
{
    if (r->have) {
        r->have = 0;
        return r->spare;
    }
    double u1 = pare_unit_double(pare_splitmix64(&r->state), r->u1_offset);
    double u2 = pare_unit_double(pare_splitmix64(&r->state), r->u2_offset);
    r->have = 1;
    return pare_box_muller(u1, u2, &r->spare);
}

#endif
