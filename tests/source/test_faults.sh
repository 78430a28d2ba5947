#!/usr/bin/env bash
# Transient faults are retried until the data is identical to a clean read
# (dropped and reset connections, truncated and stalled transfers, 503/429
# SlowDown); lasting ones and wrong answers are reported with the URL and
# byte offset (truncation, wrong Content-Length or Content-Range, a short
# object, a changed size, 403, 404, 500), and a failed multipart upload is
# aborted. The fake credentials must not show in the output.
. "$(dirname "$0")/lib.sh"
export FAULT_ROOT=$WORK/objects
mkdir -p "$FAULT_ROOT"
start_faults "$FAULT_ROOT"
run_check faults fault-secret-c0ffee fault-token-beef
finish
