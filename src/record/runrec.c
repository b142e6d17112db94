/* Run records (see runrec.h): run.json found from a folder or a file, parsed, checked to be a run record
 * and named after its folder. */
#include "runrec.h"

#include <stdio.h>
#include <string.h>

#include "core/fileio.h"

const char *runrec_base_name(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s && s[1] ? s + 1 : path ? path : "";
}

pare_status runrec_load(const char *arg, runrec *r, pare_error *err)
{
    memset(r, 0, sizeof *r);
    if (pare_is_dir(arg))
        snprintf(r->path, sizeof r->path, "%s/run.json", arg);
    else
        snprintf(r->path, sizeof r->path, "%s", arg);
    pare_status st = pare_file_exists(r->path) ? pare_check_input(r->path, err) : PARE_OK;
    if (st) /* a named pipe would block */
        return st;
    json_error_t je;
    r->root = json_load_file(r->path, 0, &je);
    if (!r->root)
        return pare_file_exists(r->path)
                   ? pare_fail(err, PARE_EFORMAT, "%s:%d: not valid JSON: %s", r->path, je.line, je.text)
                   : pare_fail(err, PARE_EIO, "%s: no run record (run.json) there; is it a pare run output folder?",
                               arg);
    r->results = json_object_get(r->root, "results");
    r->status = json_string_value(json_object_get(r->root, "status"));
    if (!json_is_array(r->results) || !r->status) {
        st = pare_fail(err, PARE_EFORMAT, "%s: not a pare run record (no status or results)", r->path);
        runrec_free(r);
        return st;
    }
    snprintf(r->folder, sizeof r->folder, "%s", r->path);
    char *slash = strrchr(r->folder, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(r->folder, sizeof r->folder, ".");
    r->name = runrec_base_name(r->folder);
    return PARE_OK;
}

void runrec_free(runrec *r)
{
    json_decref(r->root);
    memset(r, 0, sizeof *r);
}
