/* pare's version, one definition for the CLI, the Lua module, run records, exports and PNG metadata. */
#ifndef PARE_VERSION_H
#define PARE_VERSION_H
#define PARE_VERSION "0.2.0"
#endif
