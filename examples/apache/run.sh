#!/bin/bash
# Start Apache in the foreground (the container's main process).
rm -rf /run/apache2/*
source /etc/apache2/envvars
exec apache2 -D FOREGROUND
