#!/bin/sh
# The end-to-end suite again with the thread-pool storage engine.
BLKBACKD_ENGINE=thread
export BLKBACKD_ENGINE
exec sh "$top_srcdir/tests/integration/blkbackd-e2e.sh"
