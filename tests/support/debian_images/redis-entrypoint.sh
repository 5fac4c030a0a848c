#!/bin/sh
set -eu
chown -R redis:redis /data
exec runuser -u redis -- "$@"
