#!/bin/sh
# A self-signed certificate for 127.0.0.1 and its key, for the queue test's redis-server with TLS
# (test/queue.test.ts). Test-only: the key is public. Valid for 100 years so the fixture does not expire.
#   sh tools/gen_tls_fixture.sh     (writes test/fixtures/tls/cert.pem and key.pem)
set -e
dir="$(dirname "$0")/../test/fixtures/tls"
mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/key.pem" -out "$dir/cert.pem" -days 36500 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost"
