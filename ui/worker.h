/* The workbench's job thread: one long job at a time (calibration, spectra, evaluation, a recipe run)
 * runs on a pthread while the screen keeps taking keys. The job reports progress and log lines
 * through the worker, which the UI thread polls; a cancel request makes the job's next progress
 * callback return "cancel", so the core stops at its next progress point. A job never touches the
 * UI's state: it works on copies and hands its output over in done(), which runs on the UI thread. */
#ifndef PARE_UI_WORKER_H
#define PARE_UI_WORKER_H

#include "core/error.h"

typedef struct tui_worker tui_worker;
typedef struct tui_job tui_job;

struct tui_job {
    char name[64];
    /* On the worker thread. p reports progress and answers cancel requests. */
    pare_status (*run)(tui_job *j, tui_worker *w, const pare_progress *p, pare_error *err);
    /* On the UI thread, from tui_worker_poll, once run returned; ctx is poll's. May be NULL. */
    void (*done)(tui_job *j, pare_status st, const pare_error *err, void *ctx);
    /* Frees the job (after done). NULL: free(). */
    void (*destroy)(tui_job *j);
};

typedef struct {
    int running;
    char job[64];
    char stage[64];
    char detail[192];
    double fraction;  /* of the current stage */
    double eta_s;     /* -1 unknown */
    double elapsed_s; /* since the job started */
    int cancelling;
} tui_job_status;

tui_worker *tui_worker_start(void);
/* Cancels any job, waits up to wait_ms for it, then stops the thread. Returns 0 when the thread was
 * joined; -1 when the job did not stop in time (the thread is then left running, detached, and the
 * worker is not freed: the process is about to exit). */
int tui_worker_stop(tui_worker *w, int wait_ms);
/* Starts j; -1 (j untouched) when a job is running. The worker owns j from here. */
int tui_worker_submit(tui_worker *w, tui_job *j);
int tui_worker_busy(tui_worker *w);
void tui_worker_cancel(tui_worker *w);
/* Non-zero once the running job was asked to stop (for callbacks that cannot take a user pointer). */
int tui_worker_cancel_requested(tui_worker *w);
/* A log line from the job (any thread). */
void tui_worker_log(tui_worker *w, const char *line);
/* Progress from the job thread outside a core call (e.g. a recipe's events); returns non-zero to cancel. */
int tui_worker_progress(tui_worker *w, const char *stage, double fraction, const char *detail);

/* On the UI thread: drains log lines into on_log, fills *status, and when the job finished calls its
 * done(ctx) and destroy. Returns 1 when a job finished in this call. */
int tui_worker_poll(tui_worker *w, void (*on_log)(void *ctx, const char *line), void *ctx, tui_job_status *status);

#endif
