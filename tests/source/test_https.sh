#!/usr/bin/env bash
# https:// and http:// against nginx serving byte ranges, with a self-signed
# certificate: verified with the CA file given, refused clearly without it.
. "$(dirname "$0")/lib.sh"
export WWW_DIR=$WORK/www
mkdir -p "$WWW_DIR"
start_nginx "$WWW_DIR"
run_check https
finish
