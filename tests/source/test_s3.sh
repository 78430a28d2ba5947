#!/usr/bin/env bash
# s3:// and gs:// against moto with signature checks on: PutObject and
# multipart writes, sizes, ranged reads, >1000-key listings, temporary
# credentials, and the errors (wrong secret, missing bucket or key, ranges
# past the end). No credential may show in anything printed.
. "$(dirname "$0")/lib.sh"
start_moto ctrain-s3 ctrain-gcs
run_check s3 "$MOTO_SK" "$MOTO_TMP_SK" "$MOTO_TMP_TOKEN" wrong-secret-7f3a9c not-the-token-91c2 \
    wrong-gcs-secret-55d1
finish
