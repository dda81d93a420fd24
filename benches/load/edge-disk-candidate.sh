#!/usr/bin/env bash
# The edge as a cdnbench candidate that serves from its disk tier only: the memory tier takes no
# object (max_object_size 64B), so every hit reads, checks and streams a body file. Compare with
# nginx on a disk directory (docs/benchmarks.md has the command).
EDGE_ID=bench-disk EDGE_MEM=64MiB EDGE_MEM_OBJECT=64B exec "$(dirname "$0")/edge-candidate.sh"
