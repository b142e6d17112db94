/* Exporting a (compressed) model to disk: a dense Hugging Face folder any HF-compatible tool can
 * load, or the compact "pare" format (factors, masks and slices kept as they are) that
 * pare_model_load reloads bit for bit (model_pare.h: its manifest and reader). Both are written into
 * a temporary sibling folder and renamed into place only when complete. See docs/formats.md, "pare
 * export formats". */
#ifndef PARE_EXPORT_H
#define PARE_EXPORT_H

#include <stddef.h>
#include "error.h"
#include "model.h"
#include "model_pare.h"

typedef enum {
    PARE_EXPORT_HF_DENSE, /* "hf-dense": config.json + model.safetensors with the original HF names */
    PARE_EXPORT_PARE      /* "pare": compact tensors (block matrices in the factor dtype) + pare.json manifest */
} pare_export_format;

typedef struct {
    pare_export_format format;
    int overwrite;                   /* replace an existing export folder, only once the new one is complete */
    const char *dtype;               /* hf-dense: "F32" (default), "F16" or "BF16"; the pare format takes
                                        factor_dtype instead (any other value is refused) */
    const char *factor_dtype;        /* pare format: the stored dtype of every block matrix (factors A and B,
                                        the weights of dense, masked and sliced layers): "F32" (default, so a
                                        reload is bit-exact), "BF16" or "F16" (rounded to nearest even; the
                                        reload converts back to fp32); embeddings, norms, biases and the head
                                        stay F32. Any case; hf-dense refuses all but F32 (it has dtype) */
    const char *manifest_extra_json; /* pare format: a JSON object stored as "compression" in pare.json
                                        (e.g. method, ratio, perplexities); NULL for none */
    const char *producer;            /* recorded in pare.json as "producer" when non-NULL, e.g. "pare 0.1.0" */
} pare_export_opts;

typedef struct {
    size_t bytes_on_disk; /* all files written */
    size_t tensor_bytes;  /* tensor data in model.safetensors (header excluded) */
    int files;            /* files written */
    int ffn_width;        /* hf-dense: the exported intermediate_size; pare: the widest block */
    int padded_blocks;    /* hf-dense: blocks zero-padded to ffn_width; pare: 0 */
} pare_export_report;

/* hf-dense, F32 (both dtypes), no overwrite, no manifest extras. */
void pare_export_defaults(pare_export_opts *o);
/* "hf-dense" / "pare", and back (an unknown name is PARE_EINVAL listing both). */
const char *pare_export_format_name(pare_export_format f);
pare_status pare_export_format_parse(const char *name, pare_export_format *f, pare_error *err);

/* Writes m to the folder dir (which must not exist unless o->overwrite; an existing folder is only
 * replaced when it holds nothing but files and a config.json, i.e. looks like a model folder).
 * o may be NULL for the defaults, p and rep may be NULL. On any failure or cancel nothing is left
 * behind: no temporary folder, and an existing dir is untouched.
 * Errors: PARE_EINVAL (destination exists, bad option), PARE_EUNSUPPORTED (a state the format cannot
 * express: hf-dense needs every attention/head matrix at its loaded shape and consistent FFN
 * widths; the pare format needs increasing kept indices), PARE_EIO, PARE_ENOMEM, PARE_ECANCELED. */
pare_status pare_export(const pare_model *m, const char *dir, const pare_export_opts *o, const pare_progress *p,
                        pare_export_report *rep, pare_error *err);

/* Rounds every block matrix's values (factors A and B, the weights of the other layers) to the
 * factor dtype (a name as in pare_export_opts; NULL is F32, which changes nothing) and back, in
 * place: m then holds what a pare export with that factor_dtype stores, so what it computes (a
 * perplexity) is what the reloaded export computes, to the bit. PARE_EINVAL for an unknown dtype;
 * for F16 also when a value exceeds its range, naming the matrix (m is then partly rounded). */
pare_status pare_export_round_block_weights(pare_model *m, const char *factor_dtype, pare_error *err);

/* The bytes pare_export would write (bytes_on_disk), without writing anything; the same checks. */
pare_status pare_export_size(const pare_model *m, const pare_export_opts *o, size_t *bytes, pare_error *err);

/* The pieces of the export's atomic folder, shared with every writer of a whole model folder (pare
 * init): an existing dir may only be replaced when it looks like a model folder (config.json and only
 * files or links); the new folder is built in a sibling "<dir>.<tag>-xxxxxx" (mode 0777 less the
 * umask; 0, or -1 with errno) and put in place by pare_commit_dir: a rename, or an atomic exchange
 * with the old folder, which is then removed. */
pare_status pare_dir_check_replaceable(const char *dir, pare_error *err);
/* What pare_export checks of dir before any work: an existing dir is refused unless overwrite, and then
 * only replaced when it looks like a model folder. Front ends call it before compressing, so that a
 * destination that would be refused costs no compression first. */
pare_status pare_export_check_destination(const char *dir, int overwrite, pare_error *err);
int pare_make_sibling_dir(char *out, size_t cap, const char *dir, const char *tag);
pare_status pare_commit_dir(const char *tmp, const char *dir, int replacing, pare_error *err);

/* JSON text as pare writes config.json: indented, keys in order, every real in the fewest digits
 * that print it exactly (0.1, not 0.10000000000000001). NULL when out of memory; free() it. */
struct json_t;
char *pare_json_dumps_readable(struct json_t *j);

#endif
