/* The pare export format as the loader sees it: the manifest that marks a pare-format folder, the
 * dense parameters under their HF names (shared with the writer, export.c) and the reader that
 * pare_model_load calls on such a folder. See docs/formats.md, "pare export formats". */
#ifndef PARE_MODEL_PARE_H
#define PARE_MODEL_PARE_H

#include "error.h"
#include "model.h"

/* The manifest that marks a pare-format folder, and the manifest version this build writes/reads. */
#define PARE_EXPORT_MANIFEST "pare.json"
#define PARE_EXPORT_VERSION 1

/* One dense parameter: its HF name and where it lives in the model's slab, shape [d0] (d1 == 0) or
 * [d0, d1]. */
typedef struct {
    char name[96];
    float *p;
    int d0, d1;
} pare_param_ref;

/* Embeddings, norms and an untied head under their HF names (the loader's names, in model.c); the
 * same list serves both export formats, the pare reader and pare init. Which tensors exist follows
 * from m->cfg alone, so a model with only cfg and a zeroed blocks[L] (no slab: every p NULL) lists
 * the names and shapes of a checkpoint not yet written. Returns the count (refs may be NULL). */
int pare_model_named_params(const pare_model *m, pare_param_ref *refs);

/* Non-zero when dir holds a pare-format export (a pare.json manifest). */
int pare_export_is_pare_dir(const char *dir);

/* Used by pare_model_load on a pare-format folder: m->cfg comes from dir/config.json and the slab is
 * allocated for that dense architecture; this fills every parameter from the folder's safetensors,
 * rebuilds the compressed linears exactly as pare.json describes (validated completely; errors name
 * pare.json and the linear) and loads the tokenizer (tokenizer_path, else tokenizer.json, else
 * tokenizer.bin in dir; none is not an error). */
pare_status pare_model_load_pare(pare_model *m, const char *dir, const char *tokenizer_path, pare_error *err);

#endif
