#!/usr/bin/env bash
# Prints the class path of the gRPC Java runtime from Debian's jars in /usr/share/java (no Maven):
# libgrpc-java, libprotobuf-java, libguava-java, libperfmark-java and libnetty-java. The Netty
# jars are the ones grpc-netty's HTTP/2 transport loads; without the native epoll jar it uses NIO.
# `classpath.sh compile` adds the annotations that only javac needs: javax.annotation.Generated
# (the grpc-java 1.41 plugin always writes it; JDK 11+ lacks it) and Error Prone's, which the
# gRPC and Guava class files carry.
set -euo pipefail
jars=(
  grpc-api grpc-context grpc-core grpc-netty grpc-protobuf grpc-protobuf-lite grpc-stub
  protobuf guava perfmark-api jsr305
  netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks netty-common
  netty-handler netty-handler-proxy netty-resolver netty-transport
)
if [ "${1:-}" = compile ]; then
  jars+=(geronimo-annotation-1.3-spec error-prone-annotations)
fi
path=""
for jar in "${jars[@]}"; do
  file="/usr/share/java/$jar.jar"
  [ -f "$file" ] || { echo "classpath.sh: missing $file" >&2; exit 1; }
  path="$path${path:+:}$file"
done
echo "$path"
