/* Zero-shot task data: readers for PIQA, ARC-Easy, BoolQ and HellaSwag in their published file
 * formats, turned into multiple-choice items with the prompt templates of lm-evaluation-harness. */
#ifndef PARE_TASKS_H
#define PARE_TASKS_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef enum { PARE_TASK_PIQA, PARE_TASK_ARC_EASY, PARE_TASK_BOOLQ, PARE_TASK_HELLASWAG } pare_task_kind;
#define PARE_TASK_KINDS 4

/* One item as the harness scores it: the continuation of choice j is task->delimiter + choices[j],
 * scored after context. */
typedef struct {
    char *context;  /* the prompt with the template applied */
    int n_choices;  /* >= 1 */
    char **choices; /* choice texts without the delimiter (what acc_norm's length counts) */
    int gold;       /* index of the correct choice */
    int line;       /* 1-based line of the item in its data file (first of its lines for HellaSwag) */
} pare_task_item;

typedef struct {
    pare_task_kind kind;
    char path[4096];        /* the data file read */
    char labels_path[4096]; /* PIQA's labels file; empty for the others */
    const char *delimiter;  /* between context and choice: " " (the harness's target_delimiter) */
    size_t n_items;         /* items kept (after limit) */
    size_t n_in_file;       /* items in the file */
    pare_task_item *items;
} pare_task;

/* The tasks' names, indexed by pare_task_kind and NULL-terminated: "piqa", "arc-easy", "boolq", "hellaswag". */
extern const char *const PARE_TASK_NAMES[PARE_TASK_KINDS + 1];
/* A name of PARE_TASK_NAMES (also "arc_easy"). Unknown names are PARE_EINVAL with the list. */
pare_status pare_task_kind_parse(const char *name, pare_task_kind *kind, pare_error *err);
const char *pare_task_kind_name(pare_task_kind kind);
/* The template as a one-line human string, e.g. "Question: {goal}\nAnswer:" + " {sol1|sol2}". */
const char *pare_task_template(pare_task_kind kind);

/* Reads a task from path: a data file, or a folder holding the published file names
 * (piqa: valid.jsonl + valid-labels.lst; arc-easy: ARC-Easy-Test.jsonl; boolq: val.jsonl;
 * hellaswag: hellaswag_val_full.txt.bz2 or .txt). A PIQA file X.jsonl takes its labels from X-labels.lst.
 * The whole file is parsed and checked; limit > 0 keeps only the first limit items. Errors name the
 * file and line. */
pare_status pare_task_load(pare_task_kind kind, const char *path, size_t limit, pare_task **out, pare_error *err);
void pare_task_free(pare_task *t);

/* The most bytes a compressed task file may expand to, unless pare_set_task_max_decompressed says
 * otherwise: HellaSwag's validation file is 7.4 MiB. */
#define PARE_TASK_MAX_DECOMPRESSED_DEFAULT ((uint64_t)64 << 20)

/* Sets that limit for later reads: bytes > 0 with source naming it in messages (e.g.
 * "PARE_TASK_MAX_DECOMPRESSED", which the front end reads: the core reads no environment); bytes 0
 * or source NULL restores the default. */
void pare_set_task_max_decompressed(uint64_t bytes, const char *source);
/* The source of the limit in force, or NULL for the default. */
const char *pare_task_max_decompressed_source(void);

/* Reads a whole file, decompressing it when it is bzip2 (one or more concatenated streams); *data is
 * NUL-terminated and malloc'd, *len excludes the NUL. Output beyond the limit above is PARE_EFORMAT
 * naming the file and the limit (a decompression bomb is refused, not allocated). */
pare_status pare_read_maybe_bz2(const char *path, char **data, size_t *len, pare_error *err);

/* The harness's HellaSwag preprocess(): strip, " [title]" -> ". ", drop "[...]" spans, "  " -> " "
 * (one left-to-right pass, as str.replace). *out is malloc'd. */
pare_status pare_hellaswag_preprocess(const char *s, char **out, pare_error *err);

/* Characters (Unicode code points) of UTF-8 text, as Python's len() counts them for acc_norm. */
size_t pare_utf8_chars(const char *s);

#endif
