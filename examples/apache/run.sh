#!/bin/bash
# Start Apache in the foreground: the container lives as long as its PID 1 does.
rm -rf /run/apache2/*                    # clean a previous run's pid file and sockets
source /etc/apache2/envvars
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
exec apache2 -D FOREGROUND               # the seed's `apachectl -D FOREGROUND`, as PID 1
