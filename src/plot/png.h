/* PNG files of canvases: an atomic writer with text metadata and a reader back to RGBA8. */
#ifndef PARE_PNG_H
#define PARE_PNG_H

#include <stdint.h>

#include "canvas.h"
#include "core/error.h"

/* Text stored in the file: Title, Software ("pare VERSION", always) and Source (e.g. the run that
 * produced the data). NULL or empty fields are left out. */
typedef struct {
    const char *title;
    const char *source;
} pare_png_meta;

/* Writes 8-bit RGB when every pixel is opaque, else RGBA, to "<path>.tmp.<pid>" and renames it over
 * path; on failure nothing is left under either name. meta may be NULL. */
pare_status pare_png_write(const pare_canvas *c, const char *path, const pare_png_meta *meta, pare_error *err);

/* Reads any PNG as 8-bit RGBA (*rgba: width * height * 4 bytes, freed by the caller). */
pare_status pare_png_read(const char *path, uint8_t **rgba, int *width, int *height, pare_error *err);

#endif
