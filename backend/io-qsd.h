/* Private to the qemu-storage-daemon provider (io-qsd.c and its helpers). */
#ifndef BLKBACKD_IO_QSD_H
#define BLKBACKD_IO_QSD_H

#include "io.h"

/* io-qsd-chain.c: 0 when QEMU can open the image named format:file
 * without probing any backing file's format; -EPERM (a backing file
 * without a recorded format) or -EIO (qemu-img missing, failing or slow)
 * with err saying which. Runs qemu-img and waits for it: not on a thread
 * that must not block. */
int qsd_chain_check(const char *format, const char *file, struct io_error *err);

#endif
