/* Shared pieces of the batch CLI: option tables, error exits, progress on stderr. */
#ifndef PARE_CLI_H
#define PARE_CLI_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"
#include "core/model.h"
#include "core/numparse.h"

/* Exit statuses: 0 success, 2 bad input, usage or any other error the core reports, 130 interrupted
 * (SIGINT), 143 terminated (SIGTERM): 128 + the signal, as a shell reports a process it killed. */
enum { EXIT_BAD_INPUT = 2, EXIT_INTERRUPTED = 130, EXIT_TERMINATED = 143 };

typedef enum { OPT_STR, OPT_INT, OPT_DOUBLE, OPT_FLAG, OPT_SIZE, OPT_U64 } cli_opt_type;

typedef struct {
    const char *name; /* without the leading dashes, e.g. "window"; a one-letter name also takes "-x" */
    cli_opt_type type;
    void *dst;
    const char *help;
} cli_opt;

/* Parses argv[1..] against opts; positional arguments are not accepted unless pos/n_pos given.
 * Prints "pare CMD: problem" and returns non-zero on a bad option. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, int n_opts);
void cli_usage(const char *cmd, const char *synopsis, const cli_opt *opts, int n_opts);

/* Help and error texts that quote a fact owned by the core (a default from its *_defaults(), names
 * from its tables), built once per process so a text never repeats a value typed by hand. The
 * strings live until the process ends. cli_help: printf-style (on overflow, fmt itself);
 * cli_help_default: "TEXT (default VALUE)" with VALUE as %g (on overflow, text alone);
 * cli_names: a NULL-terminated table joined by sep, the last one by last_sep ("a | b | c",
 * "a, b or c"). */
const char *cli_help(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *cli_help_default(const char *text, double value);
const char *cli_help_default_str(const char *text, const char *value);
const char *cli_names(const char *const *names, const char *sep, const char *last_sep);

/* Prints j (consumed) on stdout with json_dumps flags; a NULL j (a json_pack that failed) or a failed
 * dump is an error line instead of a crash. Returns 0 or the exit status to use. */
struct json_t;
int cli_print_json(const char *cmd, struct json_t *j, size_t flags);

/* Prints the error's one line ("pare CMD: message") and returns the exit status to use. */
int cli_error(const char *cmd, const pare_error *err);

/* The one --out check of every command (pare_check_output_path: not empty, not /, not the current
 * folder or one above it): 0, or the exit status after printing "pare CMD: OPT PATH: problem". */
int cli_check_out(const char *cmd, const char *opt, const char *path);

/* Progress printer for core callbacks: \r-updated on a terminal, a line every 10% otherwise. */
typedef struct {
    const char *label;
    double start;
    double units_total; /* e.g. tokens for the whole job, for the rate */
    const char *unit;
    double last_print;
    int last_decile;
    int tty;
    int printed;
    char last_detail[128]; /* where the job was at the last callback, for "interrupted at ..." */
} cli_progress;

void cli_progress_init(cli_progress *p, const char *label, double units_total, const char *unit);
int cli_progress_cb(void *user, const char *stage, double fraction, const char *detail);
void cli_progress_done(cli_progress *p);

double cli_now(void);
size_t cli_peak_rss(void);
/* Installs SIGINT and SIGTERM handling for a long job: the first signal sets the flag its progress
 * callbacks check (the job cancels cleanly: outputs complete or absent, run.json "cancelled"), a
 * second one exits at once. Quick commands keep the default (the signal ends them). */
void cli_install_sigint(void);
int cli_interrupted(void);
/* The exit status of a cancelled job: 143 after SIGTERM, else 130. */
int cli_interrupt_status(void);

pare_status cli_load_model(const char *path, const char *tok, pare_model **m, pare_error *err);
/* Reads a whole UTF-8 text file and tokenizes it without special tokens; errors name the file. */
pare_status cli_tokenize_file(const pare_model *m, const char *path, int32_t **ids, size_t *n, pare_error *err);
/* Calibration windows (seeded) from a text file, reported on stderr. */
pare_status cli_calib_windows(const pare_model *m, const char *path, const void *calib_opts, int32_t **windows,
                              pare_error *err);
/* One-shot calibration statistics (Gram matrices when the options' gram is set) from a text file,
 * with progress on stderr; calib_opts is a pare_calib_opts. */
struct pare_calib_stats;
pare_status cli_calibrate_file(pare_model *m, const char *path, const void *calib_opts, struct pare_calib_stats **st,
                               pare_error *err);
/* The index of name in a NULL-terminated table of names (the core's *_NAMES), or -1. */
int cli_name_index(const char *const *names, const char *name);

int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_spectra(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_compress(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_tui(int argc, char **argv);

#endif
