/* The streamed model's block cache, internal to the core: model.c opens it when it loads a model
 * streamed and reads a block's weights into the buffer the cache hands it. The public side
 * (pare_block_acquire, pare_block_release, pare_model_memory_plan) is declared in model.h. */
#ifndef PARE_BLOCK_STORE_H
#define PARE_BLOCK_STORE_H

#include <stddef.h>
#include "error.h"
#include "model.h"
#include "safetensors.h"

/* Takes over *st (the open, mapped checkpoint) and caches up to budget bytes of fp32 block weights;
 * m's streamed linears (l->streamed, w NULL) are filled on acquire. On failure st is closed. */
pare_status pare_block_store_open(pare_model *m, pare_safetensors *st, size_t budget, pare_error *err);
void pare_block_store_free(pare_model *m);
/* dst, a copy of the streamed src whose linears still view src's buffers, gets a cache of its own
 * over the same files (dst->store NULL when src is in memory). */
pare_status pare_block_store_clone(const pare_model *src, pare_model *dst, pare_error *err);
/* The fp32 bytes of block l's streamed weights. */
size_t pare_block_store_bytes(const pare_model *m, int l);

/* model.c: converts block l's streamed weights from the mapped files into the w each streamed
 * linear of the block now points at. */
pare_status pare_model_read_block(const pare_model *m, const pare_safetensors *st, int l, pare_error *err);

#endif
