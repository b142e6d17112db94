/* Run records: the run.json that the session runner (lua/lsession.c) writes last into a run's output
 * folder. This is the one reader of that file: `pare compare`, `pare plot size-quality` and the TUI's
 * results pane load records through runrec_load, and runplots.c turns their result rows into charts.
 * Layer: below lua/, ui/ and src/cli/; uses only src/core and jansson (tools/layering.sh checks it). */
#ifndef PARE_RECORD_RUNREC_H
#define PARE_RECORD_RUNREC_H

#include <jansson.h>

#include "core/error.h"

typedef struct {
    json_t *root;       /* the whole record (owned) */
    json_t *results;    /* root's "results": an array of result rows (method, steps, params, metrics) */
    const char *status; /* root's "status": complete, failed or cancelled */
    char path[4200];    /* the file read: ARG/run.json for a folder, else ARG */
    char folder[4200];  /* the folder holding the file ("." for a file in the current folder) */
    const char *name;   /* the run's name: the folder's base name (points into folder) */
} runrec;

/* Loads the run record of a run output folder or of a run.json file. Errors name the argument: no
 * record there (PARE_EIO), not JSON (PARE_EFORMAT, with the line), no status or results (PARE_EFORMAT).
 * On success runrec_free releases it; on failure nothing is held. */
pare_status runrec_load(const char *arg, runrec *r, pare_error *err);
void runrec_free(runrec *r);

/* The base name of a path ("" for NULL): metric data files and run folders are named by it. */
const char *runrec_base_name(const char *path);

#endif
