/* The terminal of `pare tui`: taken by curses (or, headless, a screen in memory) and restored on every
 * exit path: quit, errors, Ctrl-C, SIGTERM, SIGHUP, crash signals. While the screen is up, library
 * output on fds 1 and 2 is captured and drained into the log pane. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tui_internal.h"

static volatile sig_atomic_t g_signal;   /* a quit signal arrived (SIGINT, SIGTERM, SIGHUP) */
static volatile sig_atomic_t g_term_up;  /* curses owns the terminal */
static int g_saved_fd[3] = {-1, -1, -1}; /* the real fds 1 and 2 while a pipe stands in for them */
static int g_pipe[3] = {-1, -1, -1};     /* read ends of those pipes */
static FILE *g_term_out;                 /* curses' own handle on the terminal (a dup of fd 1) */
static FILE *g_term_in;                  /* headless: /dev/null as curses' input */
static SCREEN *g_screen;

/* Gives the terminal back: leaves curses (normal screen, cursor, modes) and restores fds 1 and 2.
 * Safe to call more than once; called on every exit path, from atexit and from the crash handler. */
static void term_end(void)
{
    if (g_term_up) {
        g_term_up = 0;
        endwin();
    }
    for (int fd = 1; fd <= 2; fd++)
        if (g_saved_fd[fd] >= 0) {
            dup2(g_saved_fd[fd], fd);
            close(g_saved_fd[fd]);
            g_saved_fd[fd] = -1;
        }
}

static void on_quit_signal(int sig) { g_signal = sig; }

/* A crash must not leave the terminal in raw mode on the alternate screen: restore it, then die of
 * the same signal (so a core dump and the exit status stay what they would have been). */
static void on_crash(int sig)
{
    term_end();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_quit_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    int crash[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof crash / sizeof crash[0]; i++)
        sigaction(crash[i], &sa, NULL);
}

/* Libraries (OpenBLAS, OpenMP, a recipe's io.write) may write to stderr or stdout; while the screen is
 * up that would scribble over it, so fds 1 and 2 become pipes the loop drains into the log pane
 * (curses writes through its own duplicate of the terminal, g_term_out). */
static void capture_output(void)
{
    fflush(stdout);
    fflush(stderr);
    for (int fd = 1; fd <= 2; fd++) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC))
            continue;
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        fcntl(fds[1], F_SETFL, O_NONBLOCK); /* a full pipe drops text rather than blocking a job */
        g_saved_fd[fd] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (g_saved_fd[fd] < 0 || dup2(fds[1], fd) < 0) {
            if (g_saved_fd[fd] >= 0)
                close(g_saved_fd[fd]);
            g_saved_fd[fd] = -1;
            close(fds[0]);
        } else
            g_pipe[fd] = fds[0];
        close(fds[1]);
    }
}

/* Takes the terminal (headless: curses draws into memory for a cols x rows screen, writing to
 * /dev/null and reading nothing; the keys come from --keys). */
int tui_term_start(tui_app *a, int cols, int rows)
{
    install_signals(); /* before curses, which otherwise installs its own SIGINT/SIGTERM handlers */
    FILE *in = stdin;
    if (a->headless) {
        g_term_out = fopen("/dev/null", "w");
        g_term_in = fopen("/dev/null", "r");
        if (!g_term_out || !g_term_in) {
            if (g_term_out)
                fclose(g_term_out);
            if (g_term_in)
                fclose(g_term_in);
            g_term_out = g_term_in = NULL;
            return -1;
        }
        in = g_term_in;
        /* a fixed terminal type: what is drawn does not depend on the caller's TERM */
        g_screen = newterm("xterm-256color", g_term_out, in);
        if (!g_screen)
            g_screen = newterm("vt100", g_term_out, in);
    } else {
        int out = fcntl(1, F_DUPFD_CLOEXEC, 3);
        if (out < 0 || !(g_term_out = fdopen(out, "w"))) {
            if (out >= 0)
                close(out);
            return -1;
        }
        g_screen = newterm(NULL, g_term_out, in);
    }
    if (!g_screen) {
        fclose(g_term_out);
        g_term_out = NULL;
        if (g_term_in)
            fclose(g_term_in);
        g_term_in = NULL;
        return -1;
    }
    g_term_up = 1;
    atexit(term_end);
    if (a->headless)
        resizeterm(rows, cols);
    capture_output();
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(50); /* the loop wakes at least every 50 ms: keys, job progress, signals */
    mousemask(BUTTON1_PRESSED | BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    mouseinterval(0);
    tui_colors_init(a);
    return 0;
}

/* Lines written to fds 1 and 2 while the screen is up, into the log. */
void tui_term_drain(tui_app *a)
{
    static char part[3][1024];
    static size_t plen[3];
    fflush(stdout); /* what a recipe left in stdout's buffer, into the pipe */
    for (int fd = 1; fd <= 2; fd++) {
        if (g_pipe[fd] < 0)
            continue;
        char buf[4096];
        ssize_t n;
        while ((n = read(g_pipe[fd], buf, sizeof buf)) > 0)
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == '\n' || plen[fd] == sizeof part[fd] - 1) {
                    part[fd][plen[fd]] = 0;
                    tui_log(a, 0, "%s: %s", fd == 1 ? "stdout" : "stderr", part[fd]);
                    plen[fd] = 0;
                } else
                    part[fd][plen[fd]++] = buf[i];
            }
    }
}

int tui_term_signal(void) { return g_signal; }

void tui_term_finish(tui_app *a)
{
    fflush(stdout); /* into the pipe, not onto the restored terminal */
    term_end();
    if (g_screen) { /* curses' memory, for a leak-free exit under the sanitizers */
        delscreen(g_screen);
        g_screen = NULL;
        fclose(g_term_out);
        g_term_out = NULL;
        if (g_term_in)
            fclose(g_term_in);
        g_term_in = NULL;
    }
    tui_term_drain(a);
    for (int fd = 1; fd <= 2; fd++)
        if (g_pipe[fd] >= 0)
            close(g_pipe[fd]);
}
