/* The job thread (see worker.h): a mutex-protected mailbox between the UI thread and one worker. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_CAP 256 /* lines held between polls; older ones are dropped with a note */

struct tui_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a job arrived or stop was asked */
    pthread_cond_t idle_cv; /* the job finished */
    tui_job *job;           /* submitted or running */
    int finished;           /* job's run returned; waiting for poll */
    pare_status st;
    pare_error err;
    int stop;
    atomic_int cancel;
    /* progress */
    char stage[64], detail[192];
    double fraction, stage_start, job_start;
    /* log ring */
    char *log[LOG_CAP];
    int log_head, log_n, log_dropped;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tui_worker_progress(tui_worker *w, const char *stage, double fraction, const char *detail)
{
    pthread_mutex_lock(&w->mu);
    if (strcmp(w->stage, stage ? stage : "")) {
        snprintf(w->stage, sizeof w->stage, "%s", stage ? stage : "");
        w->stage_start = now_s();
    }
    snprintf(w->detail, sizeof w->detail, "%s", detail ? detail : "");
    w->fraction = fraction < 0 ? 0 : fraction > 1 ? 1 : fraction;
    pthread_mutex_unlock(&w->mu);
    return atomic_load(&w->cancel);
}

static int progress_cb(void *user, const char *stage, double fraction, const char *detail)
{
    return tui_worker_progress(user, stage, fraction, detail);
}

static void *thread_main(void *arg)
{
    tui_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && (!w->job || w->finished))
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        tui_job *j = w->job;
        pthread_mutex_unlock(&w->mu);
        pare_error err = {0};
        pare_progress p = {progress_cb, w};
        pare_status st = j->run(j, w, &p, &err);
        pthread_mutex_lock(&w->mu);
        w->st = st;
        w->err = err;
        w->finished = 1;
        pthread_cond_broadcast(&w->idle_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

tui_worker *tui_worker_start(void)
{
    tui_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->idle_cv, NULL);
    atomic_init(&w->cancel, 0);
    if (pthread_create(&w->thread, NULL, thread_main, w)) {
        free(w);
        return NULL;
    }
    return w;
}

static void free_job(tui_job *j)
{
    if (!j)
        return;
    if (j->destroy)
        j->destroy(j);
    else
        free(j);
}

int tui_worker_stop(tui_worker *w, int wait_ms)
{
    if (!w)
        return 0;
    atomic_store(&w->cancel, 1);
    pthread_mutex_lock(&w->mu);
    if (w->job && !w->finished) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (w->job && !w->finished)
            if (pthread_cond_timedwait(&w->idle_cv, &w->mu, &until) == ETIMEDOUT)
                break;
    }
    if (w->job && !w->finished) { /* stuck in a step without progress points: leave it to exit() */
        pthread_mutex_unlock(&w->mu);
        pthread_detach(w->thread);
        return -1;
    }
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    free_job(w->job);
    for (int i = 0; i < w->log_n; i++)
        free(w->log[(w->log_head + i) % LOG_CAP]);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
    free(w);
    return 0;
}

int tui_worker_submit(tui_worker *w, tui_job *j)
{
    pthread_mutex_lock(&w->mu);
    if (w->job) {
        pthread_mutex_unlock(&w->mu);
        return -1;
    }
    w->job = j;
    w->finished = 0;
    atomic_store(&w->cancel, 0);
    w->stage[0] = w->detail[0] = 0;
    w->fraction = 0;
    w->job_start = w->stage_start = now_s();
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int tui_worker_busy(tui_worker *w)
{
    pthread_mutex_lock(&w->mu);
    int busy = w->job != NULL;
    pthread_mutex_unlock(&w->mu);
    return busy;
}

void tui_worker_cancel(tui_worker *w)
{
    if (tui_worker_busy(w))
        atomic_store(&w->cancel, 1);
}

int tui_worker_cancel_requested(tui_worker *w) { return atomic_load(&w->cancel); }

void tui_worker_log(tui_worker *w, const char *line)
{
    char *copy = strdup(line ? line : "");
    if (!copy)
        return;
    pthread_mutex_lock(&w->mu);
    if (w->log_n == LOG_CAP) {
        free(w->log[w->log_head]);
        w->log_head = (w->log_head + 1) % LOG_CAP;
        w->log_n--;
        w->log_dropped++;
    }
    w->log[(w->log_head + w->log_n) % LOG_CAP] = copy;
    w->log_n++;
    pthread_mutex_unlock(&w->mu);
}

int tui_worker_poll(tui_worker *w, void (*on_log)(void *ctx, const char *line), void *ctx, tui_job_status *status)
{
    char *lines[LOG_CAP];
    pthread_mutex_lock(&w->mu);
    int n = w->log_n, dropped = w->log_dropped;
    for (int i = 0; i < n; i++)
        lines[i] = w->log[(w->log_head + i) % LOG_CAP];
    w->log_head = w->log_n = w->log_dropped = 0;
    tui_job *finished = w->finished ? w->job : NULL;
    pare_status st = w->st;
    pare_error err = w->err;
    if (status) {
        memset(status, 0, sizeof *status);
        status->running = w->job && !w->finished;
        if (w->job)
            snprintf(status->job, sizeof status->job, "%s", w->job->name);
        snprintf(status->stage, sizeof status->stage, "%s", w->stage);
        snprintf(status->detail, sizeof status->detail, "%s", w->detail);
        status->fraction = w->fraction;
        double t = now_s(), el = t - w->stage_start;
        status->eta_s = w->fraction > 0.005 ? el * (1 - w->fraction) / w->fraction : -1;
        status->elapsed_s = t - w->job_start;
        status->cancelling = atomic_load(&w->cancel);
    }
    if (finished) {
        w->job = NULL;
        w->finished = 0;
    }
    pthread_mutex_unlock(&w->mu);
    if (dropped && on_log) {
        char note[64];
        snprintf(note, sizeof note, "(%d log lines dropped)", dropped);
        on_log(ctx, note);
    }
    for (int i = 0; i < n; i++) {
        if (on_log)
            on_log(ctx, lines[i]);
        free(lines[i]);
    }
    if (!finished)
        return 0;
    if (finished->done)
        finished->done(finished, st, &err, ctx);
    free_job(finished);
    if (status)
        status->running = 0;
    return 1;
}
