/* pare's version, shared by the CLI (--version) and the files pare writes (PNG metadata). */
#ifndef PARE_VERSION_H
#define PARE_VERSION_H

#define PARE_VERSION "0.1.0"

#endif
