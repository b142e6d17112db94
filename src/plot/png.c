/* PNG writing and reading with libpng. libpng reports errors by longjmp; the handlers here keep
 * its message so that every failure comes back as a pare_error naming the file. */
#include "png.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/version.h"

typedef struct {
    char msg[256];
    int sys_errno; /* errno when libpng gave up: the cause of a failed fwrite (e.g. a full disk) */
} png_failure;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_failure *f = png_get_error_ptr(png);
    f->sys_errno = errno;
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    /* warnings (e.g. an unknown chunk) do not stop reading or writing; the core never prints */
    (void)png;
    (void)msg;
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/* Adds one text chunk: tEXt when the value is ASCII, iTXt (UTF-8) otherwise, since tEXt is Latin-1. */
static void add_text(png_text *t, int *n, const char *key, const char *value)
{
    if (!value || !*value)
        return;
    png_text *e = &t[(*n)++];
    memset(e, 0, sizeof *e);
    e->compression = is_ascii(value) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    e->key = (png_charp)key;
    e->text = (png_charp)value;
    e->text_length = strlen(value);
    e->lang = e->lang_key = NULL;
}

static int canvas_opaque(const pare_canvas *c)
{
    size_t n = (size_t)c->width * (size_t)c->height;
    for (size_t i = 0; i < n; i++)
        if (c->pixels[4 * i + 3] != 255)
            return 0;
    return 1;
}

/* The libpng part of writing, apart so that the setjmp frame holds no variable it could clobber.
 * Returns 0, or -1 with the failure in *fail. */
static int write_stream(FILE *fp, const pare_canvas *c, int opaque, uint8_t *rgb_row, const pare_png_meta *meta,
                        png_failure *fail)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, fail, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(fail->msg, sizeof fail->msg, "out of memory starting libpng");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    errno = 0;
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)c->width, (png_uint_32)c->height, 8,
                 opaque ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text[3];
    int n_text = 0;
    add_text(text, &n_text, "Title", meta ? meta->title : NULL);
    add_text(text, &n_text, "Software", "pare " PARE_VERSION);
    add_text(text, &n_text, "Source", meta ? meta->source : NULL);
    png_set_text(png, info, text, n_text);
    png_write_info(png, info);
    for (int y = 0; y < c->height; y++) {
        const uint8_t *src = c->pixels + (size_t)y * c->width * 4;
        if (opaque) {
            for (int x = 0; x < c->width; x++)
                memcpy(rgb_row + 3 * x, src + 4 * x, 3);
            png_write_row(png, rgb_row);
        } else {
            png_write_row(png, (png_const_bytep)src);
        }
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

pare_status pare_png_write(const pare_canvas *c, const char *path, const pare_png_meta *meta, pare_error *err)
{
    int opaque = canvas_opaque(c);
    uint8_t *rgb_row = opaque ? malloc((size_t)c->width * 3) : NULL;
    if (opaque && !rgb_row)
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory writing the PNG", path);
    pare_atomic_file f;
    pare_status st = pare_atomic_open(&f, path, err);
    if (st != PARE_OK) {
        free(rgb_row);
        return st;
    }
    png_failure fail = {"", 0};
    int bad = write_stream(f.fp, c, opaque, rgb_row, meta, &fail);
    free(rgb_row);
    if (bad) {
        pare_atomic_abort(&f);
        if (fail.sys_errno)
            return pare_fail(err, PARE_EIO, "%s: cannot write the PNG: %s (%s)", path, fail.msg,
                             strerror(fail.sys_errno));
        return pare_fail(err, PARE_EIO, "%s: cannot write the PNG: %s", path, fail.msg);
    }
    return pare_atomic_commit(&f, err);
}

pare_status pare_png_read(const char *path, uint8_t **rgba, int *width, int *height, pare_error *err)
{
    *rgba = NULL;
    *width = *height = 0;
    FILE *fp;
    pare_status rc = pare_fopen_input(path, &fp, err);
    if (rc)
        return rc;
    unsigned char sig[8];
    if (fread(sig, 1, sizeof sig, fp) != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        fclose(fp);
        return pare_fail(err, PARE_EFORMAT, "%s: not a PNG file", path);
    }
    png_failure fail = {"", 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &fail, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        fclose(fp);
        return pare_fail(err, PARE_ENOMEM, "%s: out of memory starting libpng", path);
    }
    /* volatile: assigned after setjmp and freed in its error branch */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        fclose(fp);
        return pare_fail(err, PARE_EFORMAT, "%s: corrupt or truncated PNG: %s", path, fail.msg);
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, sizeof sig);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w == 0 || h == 0 || w > PARE_CANVAS_MAX_SIDE || h > PARE_CANVAS_MAX_SIDE) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(fp);
        return pare_fail(err, PARE_EUNSUPPORTED, "%s: %ux%u pixels is beyond pare's limit of %d per side", path,
                         (unsigned)w, (unsigned)h, PARE_CANVAS_MAX_SIDE);
    }
    /* every colour type and depth becomes 8-bit RGBA */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 4)
        png_error(png, "unexpected row size after conversion to RGBA");
    pixels = malloc((size_t)w * h * 4);
    rows = malloc(h * sizeof *rows);
    if (!pixels || !rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = pixels + (size_t)y * w * 4;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    fclose(fp);
    *rgba = pixels;
    *width = (int)w;
    *height = (int)h;
    return PARE_OK;
}
