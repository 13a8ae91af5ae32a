#!/usr/bin/env python3
"""Lists the services and methods a MetaChat gRPC server describes, through server reflection,
as Python's grpcio-reflection client (which speaks grpc.reflection.v1alpha) sees them.

Needs `pip install grpcio grpcio-reflection`.

    scripts/grpc-reflection.py                      # localhost:50051 and localhost:50052
    scripts/grpc-reflection.py 127.0.0.1:50051 ...  # the servers given
"""

import sys

try:
    import grpc
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )
except ImportError:
    sys.exit("needs grpcio and grpcio-reflection: pip install grpcio grpcio-reflection")


def describe(address):
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(database)
        print(address)
        for name in database.get_services():
            print(f"  {name}")
            for method in pool.FindServiceByName(name).methods:
                print(
                    f"    {method.name}({method.input_type.full_name})"
                    f" returns ({method.output_type.full_name})"
                )
        # An unknown symbol is an error answer in the stream, not a broken stream.
        try:
            database.FindFileContainingSymbol("no.such.Symbol")
        except KeyError:
            print("  (an unknown symbol is reported as not found)")


def main():
    addresses = sys.argv[1:] or ["localhost:50051", "localhost:50052"]
    failed = False
    for address in addresses:
        try:
            describe(address)
        except grpc.RpcError as error:
            print(f"{address}: {error.code().name}: {error.details()}", file=sys.stderr)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
