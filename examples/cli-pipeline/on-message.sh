#!/bin/sh
# Called once per event with the body on stdin and LOBSTER_EVENT_ID,
# LOBSTER_EVENT_TYPE, LOBSTER_EVENT_ATTEMPT set. Exit 0 acks.
set -eu
text=$(jq -r '.data.text')
echo "[$LOBSTER_EVENT_ID attempt $LOBSTER_EVENT_ATTEMPT] $text" >> "${MESSAGES_LOG:-messages.log}"
