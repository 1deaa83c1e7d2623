"""Generated protobuf and gRPC code of the smarttrade.v1 contract. Do not edit: run scripts/generate.sh."""
