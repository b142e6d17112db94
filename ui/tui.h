/* `pare tui`: the interactive workbench (ncursesw). The only command that links curses. */
#ifndef PARE_UI_TUI_H
#define PARE_UI_TUI_H

int cmd_tui(int argc, char **argv);

#endif
